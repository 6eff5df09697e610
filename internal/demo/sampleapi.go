// Package demo is the sample API rampart demo protects: shaped like the
// rideshare simulation API of the checklists (simulation control, agents,
// metrics and a WebSocket of positions), in memory, on loopback.
package demo

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// SampleAPI is the simulated upstream.
type SampleAPI struct {
	mu       sync.Mutex
	running  bool
	agents   []Agent
	requests int
	tick     time.Duration
	rand     *rand.Rand
}

// Agent is a simulated driver or rider.
type Agent struct {
	ID   int     `json:"id"`
	Name string  `json:"name"`
	Kind string  `json:"kind"`
	Lat  float64 `json:"lat"`
	Lon  float64 `json:"lon"`
}

// NewSampleAPI returns the sample API; tick is the WebSocket update interval
// and seed makes the simulated positions repeatable.
func NewSampleAPI(tick time.Duration, seed uint64) *SampleAPI {
	s := &SampleAPI{tick: tick, rand: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for i, name := range []string{"driver-1", "driver-2", "rider-1"} {
		kind := "driver"
		if i == 2 {
			kind = "rider"
		}
		s.agents = append(s.agents, Agent{ID: i + 1, Name: name, Kind: kind, Lat: 40.7128 + float64(i)*0.01, Lon: -74.0060})
	}
	return s
}

// Handler returns the API's routes.
func (s *SampleAPI) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /simulation/status", s.status)
	mux.HandleFunc("POST /simulation/start", s.setRunning(true))
	mux.HandleFunc("POST /simulation/stop", s.setRunning(false))
	mux.HandleFunc("GET /agents", s.listAgents)
	mux.HandleFunc("POST /agents", s.createAgent)
	mux.HandleFunc("GET /metrics/summary", s.summary)
	mux.HandleFunc("GET /ws", s.stream)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Banners like a typical Python stack sends; rampart strips them.
		w.Header().Set("Server", "uvicorn")
		w.Header().Set("X-Powered-By", "FastAPI")
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *SampleAPI) status(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reply(w, http.StatusOK, map[string]any{"running": s.running, "agents": len(s.agents)})
}

func (s *SampleAPI) setRunning(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		s.running = on
		s.mu.Unlock()
		reply(w, http.StatusOK, map[string]any{"running": on})
	}
}

func (s *SampleAPI) listAgents(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reply(w, http.StatusOK, map[string]any{"agents": s.agents})
}

func (s *SampleAPI) createAgent(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil || in.Name == "" {
		reply(w, http.StatusBadRequest, map[string]string{"error": "want {\"name\": ..., \"kind\": \"driver\"|\"rider\"}"})
		return
	}
	if in.Kind != "rider" {
		in.Kind = "driver"
	}
	s.mu.Lock()
	a := Agent{ID: len(s.agents) + 1, Name: in.Name, Kind: in.Kind, Lat: 40.7128, Lon: -74.0060}
	s.agents = append(s.agents, a)
	s.mu.Unlock()
	reply(w, http.StatusCreated, a)
}

func (s *SampleAPI) summary(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	drivers := 0
	for _, a := range s.agents {
		if a.Kind == "driver" {
			drivers++
		}
	}
	reply(w, http.StatusOK, map[string]any{"agents": len(s.agents), "drivers": drivers, "riders": len(s.agents) - drivers, "requests": s.requests})
}

// stream sends every agent's position once per tick until the client leaves.
func (s *SampleAPI) stream(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := c.CloseRead(r.Context())
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		if err := wsjson.Write(ctx, c, map[string]any{"type": "positions", "agents": s.step()}); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			c.Close(websocket.StatusNormalClosure, "")
			return
		case <-t.C:
		}
	}
}

func (s *SampleAPI) step() []Agent {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.agents {
		s.agents[i].Lat += (s.rand.Float64() - 0.5) / 1000
		s.agents[i].Lon += (s.rand.Float64() - 0.5) / 1000
	}
	return append([]Agent(nil), s.agents...)
}
