package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const writerEnv = "RAMPART_AUDIT_TEST_WRITER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(writerEnv); dir != "" {
		runWriter(dir) // never returns normally: the parent kills it
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// runWriter is the child process: concurrent requests record their event
// with ack and print the request ID once Record returned ("answered").
func runWriter(dir string) {
	fs, err := OpenFile(FileOptions{Dir: dir, SealKeys: sealKeys, Encrypt: true, EncryptionKeys: encKeys, MaxSegmentBytes: 64 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	l, err := New(fs, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				ev := testEvent(i)
				ev.RequestID = fmt.Sprintf("g%d-%d", g, i)
				if err := l.Record(context.Background(), ev); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return
				}
				mu.Lock()
				fmt.Fprintln(out, ev.RequestID)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestSIGKILLKeepsAcknowledgedEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	dir := filepath.Join(t.TempDir(), "audit")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writerEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	acked := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for len(acked) < 3000 && sc.Scan() {
		acked[sc.Text()] = true
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	for sc.Scan() { // acknowledged before the kill landed
		acked[sc.Text()] = true
	}
	cmd.Wait()
	if len(acked) < 3000 {
		t.Fatalf("writer stopped early after %d acks: %s", len(acked), stderr.String())
	}

	rep, err := Verify(dir, sealKeys)
	must(t, err)
	if !rep.OK() {
		t.Fatalf("verify after SIGKILL: %v", rep.Problems)
	}
	for _, n := range rep.Notes {
		if n.Kind != KindOpen && n.Kind != KindTornTail {
			t.Fatalf("unexpected note %v", n)
		}
	}
	var out bytes.Buffer
	must(t, Export(context.Background(), dir, &out, ExportOptions{Keys: encKeys}))
	onDisk := map[string]bool{}
	for _, ln := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev Event
		must(t, json.Unmarshal([]byte(ln), &ev))
		onDisk[ev.RequestID] = true
	}
	for id := range acked {
		if !onDisk[id] {
			t.Fatalf("acknowledged event %s not on disk (%d acked, %d on disk)", id, len(acked), len(onDisk))
		}
	}
	t.Logf("%d acknowledged, %d on disk, %d segments", len(acked), len(onDisk), rep.Segments)

	// The next writer recovers the open segment and the log verifies clean.
	fs, err := OpenFile(FileOptions{Dir: dir, SealKeys: sealKeys, Encrypt: true, EncryptionKeys: encKeys})
	must(t, err)
	must(t, fs.Close())
	rep, err = Verify(dir, sealKeys)
	must(t, err)
	if !rep.OK() || len(rep.Notes) != 0 || rep.Records != uint64(len(onDisk)) {
		t.Fatalf("after recovery: %+v", rep)
	}
}
