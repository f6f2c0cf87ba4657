// Package logmask masks phone numbers in every log entry: the message, every string field and
// every error, through phone.MaskText. Fields that name a number are masked where they are
// logged already; this catches the rest — an Asterisk error quoting a dial string, a Redis
// error quoting a key — so no code path has to remember.
package logmask

import (
	"fmt"

	"go.uber.org/zap/zapcore"

	"github.com/callbackd/callbackd/internal/phone"
)

// Core wraps c so that what it writes never carries a full phone number.
func Core(c zapcore.Core) zapcore.Core { return core{c} }

type core struct{ zapcore.Core }

func (c core) With(fields []zapcore.Field) zapcore.Core { return core{c.Core.With(mask(fields))} }

func (c core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c core) Write(e zapcore.Entry, fields []zapcore.Field) error {
	e.Message = phone.MaskText(e.Message)
	return c.Core.Write(e, mask(fields))
}

func mask(fields []zapcore.Field) []zapcore.Field {
	out := make([]zapcore.Field, len(fields))
	for i, f := range fields {
		switch f.Type {
		case zapcore.StringType:
			f.String = phone.MaskText(f.String)
		case zapcore.ErrorType:
			if err, ok := f.Interface.(error); ok && err != nil {
				f = zapcore.Field{Key: f.Key, Type: zapcore.StringType, String: phone.MaskText(err.Error())}
			}
		case zapcore.StringerType:
			if s, ok := f.Interface.(fmt.Stringer); ok && s != nil {
				f = zapcore.Field{Key: f.Key, Type: zapcore.StringType, String: phone.MaskText(s.String())}
			}
		case zapcore.ReflectType, zapcore.ArrayMarshalerType, zapcore.ObjectMarshalerType:
			// Structured values are rendered to text first so their numbers can be found too.
			f = zapcore.Field{Key: f.Key, Type: zapcore.StringType, String: phone.MaskText(fmt.Sprintf("%v", f.Interface))}
		}
		out[i] = f
	}
	return out
}
