// Package phone holds what callbackd knows about telephone numbers: the E.164 form promises are
// stored in, and the masked form numbers take in logs.
package phone

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every parse failure, so callers can tell bad input from other errors.
var ErrInvalid = errors.New("invalid phone number")

// ParseE164 checks that s is an E.164 number: '+', a non-zero country digit, 7 to 15 digits in
// all. Spaces, dashes, dots and parentheses that people type are removed first; anything else
// is refused rather than guessed at, because a wrong guess dials a stranger.
func ParseE164(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalid)
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", fmt.Errorf("%w: %q has the character %q", ErrInvalid, Mask(s), r)
		}
	}
	n := b.String()
	if !strings.HasPrefix(n, "+") {
		return "", fmt.Errorf("%w: %s does not start with '+' and a country code", ErrInvalid, Mask(n))
	}
	digits := n[1:]
	if len(digits) < 7 || len(digits) > 15 {
		return "", fmt.Errorf("%w: %s has %d digits, E.164 allows 7 to 15", ErrInvalid, Mask(n), len(digits))
	}
	if digits[0] == '0' {
		return "", fmt.Errorf("%w: %s: a country code never starts with 0", ErrInvalid, Mask(n))
	}
	return n, nil
}

// Mask hides all but the country prefix and the last two digits, so a log line can still be
// matched to a complaint without exposing the number: "+31201234502" → "+31*******02".
func Mask(s string) string {
	const keepHead, keepTail = 3, 2
	r := []rune(s)
	if len(r) <= keepHead+keepTail {
		return strings.Repeat("*", len(r))
	}
	out := make([]rune, len(r))
	for i := range r {
		if i < keepHead || i >= len(r)-keepTail {
			out[i] = r[i]
		} else {
			out[i] = '*'
		}
	}
	return string(out)
}

// MaskText masks every phone number inside free text — an Asterisk error, a stored attempt
// detail — so that what is logged or kept never carries a full number, whatever form it was
// written in ("PJSIP/+31201234567@provider: 500" → "PJSIP/+31*******67@provider: 500"). A
// number here is a run of seven or more digits, with its '+' if it has one. Asterisk unique
// ids and linkedids ("1795351341.53") are left alone: they are what an operator greps for,
// and a digit run followed by '.' and a digit is one of those, not a telephone number.
func MaskText(s string) string {
	const minDigits = 7
	var b strings.Builder
	i := 0
	for i < len(s) {
		start := i
		if s[i] == '+' {
			i++
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		uniqueID := j+1 < len(s) && s[j] == '.' && s[j+1] >= '0' && s[j+1] <= '9'
		switch {
		case j-i >= minDigits && !uniqueID:
			b.WriteString(Mask(s[start:j]))
			i = j
		case j > start:
			b.WriteString(s[start:j])
			i = j
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}
