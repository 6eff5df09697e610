package app

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/rampart-security/rampart/internal/config"
)

// NewLogger builds the process logger: JSON in production, text in
// development, unless log.format says otherwise.
func NewLogger(cfg config.Log, mode string, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	format := cfg.Format
	if format == "" {
		format = "json"
		if mode == config.ModeDevelopment {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log.format: %q is not json or text", format)
}
