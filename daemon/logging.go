package daemon

import (
	"context"
	"fmt"
	"io"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/logmask"
)

// RedisLogger adapts zap to go-redis' logger interface: go-redis logs its connection
// troubles through a process-wide logger of its own, and routed through this one stderr stays
// one JSON object per line.
func RedisLogger(log *zap.Logger) interface {
	Printf(ctx context.Context, format string, v ...any)
} {
	return redisLog{log}
}

type redisLog struct{ log *zap.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// NewLogger builds the zap logger of log: level and json or console. Phone numbers are masked
// where they are logged (phone.Mask), and, unless log.mask_numbers is false, once more in every
// message, field and error (logmask), so an error quoting a dial string leaks nothing either.
func NewLogger(l config.Log, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(l.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	var enc zapcore.Encoder
	switch l.Format {
	case "console":
		enc = zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	case "json", "":
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	default:
		return nil, fmt.Errorf("--log-format must be json or console, got %q", l.Format)
	}
	core := zapcore.NewCore(enc, zapcore.AddSync(w), level)
	if l.MaskNumbers {
		core = logmask.Core(core)
	}
	return zap.New(core), nil
}
