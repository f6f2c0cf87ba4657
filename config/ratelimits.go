package config

import "fmt"

// MinTokenBytes is the shortest http.token accepted.
const MinTokenBytes = 16

// RateLimits bound what a spoofed caller id can make callbackd do (dialer.rate_limits). The
// counters live in Redis, so every daemon on it shares them; 0 turns a limit off.
type RateLimits struct {
	// PromisesPerNumberPerDay counts callback requests (made or merged) per number per day.
	PromisesPerNumberPerDay int `yaml:"promises_per_number_per_day"`
	// DialsPerNumberPerDay counts callbacks started (an agent rung) per number per day.
	DialsPerNumberPerDay int `yaml:"dials_per_number_per_day"`
	// BlockDigits is how many leading digits of the E.164 number (without '+') form a block:
	// 8 makes +31 20 123 4xxx one block of a thousand numbers.
	BlockDigits int `yaml:"block_digits"`
	// PromisesPerBlockPerHour counts callback requests per block per hour.
	PromisesPerBlockPerHour int `yaml:"promises_per_block_per_hour"`
	// DialsPerHour counts callbacks started by every daemon together per hour.
	DialsPerHour int `yaml:"dials_per_hour"`
}

// DefaultRateLimits leave a busy contact centre alone and stop a burst: a customer calling
// in a few times a day, and max_attempts dials for a couple of promises, stay within them.
func DefaultRateLimits() RateLimits {
	return RateLimits{PromisesPerNumberPerDay: 5, DialsPerNumberPerDay: 10, BlockDigits: 8,
		PromisesPerBlockPerHour: 20, DialsPerHour: 300}
}

func (v *validator) rateLimits(r RateLimits) {
	for _, l := range []struct {
		key string
		n   int
	}{
		{"promises_per_number_per_day", r.PromisesPerNumberPerDay}, {"dials_per_number_per_day", r.DialsPerNumberPerDay},
		{"promises_per_block_per_hour", r.PromisesPerBlockPerHour}, {"dials_per_hour", r.DialsPerHour},
	} {
		if l.n < 0 {
			v.addf("dialer.rate_limits."+l.key, "must be >= 0 (0 turns the limit off), got %d", l.n)
		}
	}
	if r.BlockDigits < 4 || r.BlockDigits > 14 {
		v.addf("dialer.rate_limits.block_digits", "must be 4 to 14 digits of the E.164 number, got %d", r.BlockDigits)
	}
}

// String is the rate limits in one line, for `config check --number`.
func (r RateLimits) String() string {
	return fmt.Sprintf("%d promises and %d dials per number per day, %d promises per %d-digit block per hour, %d dials per hour",
		r.PromisesPerNumberPerDay, r.DialsPerNumberPerDay, r.PromisesPerBlockPerHour, r.BlockDigits, r.DialsPerHour)
}
