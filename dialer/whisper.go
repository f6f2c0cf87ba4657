package dialer

import (
	"strconv"
	"strings"
	"time"

	"github.com/callbackd/callbackd/queue"
)

// whisperFor expands the whisper template for one promise: {number} (the customer's digits),
// {name}, {reason}, {target}, and the {hour} and {minute} of the deadline in the queue's time
// zone. An item whose placeholder has no value (no name, no target) is left out rather than
// played wrong.
func whisperFor(template []string, job queue.Job, hours Hours) []string {
	loc := time.UTC
	if hours != nil {
		if l, err := hours.Location(); err == nil {
			loc = l
		}
	}
	dl := job.Deadline.In(loc)
	values := map[string]string{
		"{number}": strings.TrimPrefix(job.Number, "+"),
		"{name}":   mediaSafe(job.Name),
		"{reason}": strings.ReplaceAll(string(job.Reason()), "_", "-"),
		"{target}": mediaSafe(job.Target),
		"{hour}":   strconv.Itoa(dl.Hour()),
		"{minute}": strconv.Itoa(dl.Minute()),
	}
	var out []string
	for _, item := range template {
		ok := true
		for ph, v := range values {
			if strings.Contains(item, ph) {
				if v == "" {
					ok = false
				}
				item = strings.ReplaceAll(item, ph, v)
			}
		}
		if ok {
			out = append(out, item)
		}
	}
	return out
}

// mediaSafe keeps what may stand in a media URI: letters, digits, '-', '_' and '.'.
func mediaSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return -1
	}, s)
}

// callerID is what the agent's phone shows: the customer, so the agent knows who it is.
func callerID(name, number string) string {
	name = strings.Map(func(r rune) rune {
		if strings.ContainsRune("\"<>\r\n", r) {
			return -1
		}
		return r
	}, name)
	if name == "" {
		name = "Callback"
	}
	return `"` + name + `" <` + number + `>`
}
