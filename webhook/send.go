package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/callbackd/callbackd/internal/netcause"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/internal/webhooksig"
	"github.com/callbackd/callbackd/queue"
)

// body is the JSON an endpoint receives: the event as queue.Event marshals it, the number
// in full unless the endpoint masks it.
func body(e queue.Event, mask bool) ([]byte, error) {
	if mask {
		e = e.Masked()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encoding event %s: %w", e.ID, err)
	}
	return b, nil
}

// sent is how one request ended: a status, or the reason there is none.
type sent struct {
	status int
	err    error
}

func (s sent) ok() bool { return s.err == nil && s.status >= 200 && s.status < 300 }

// String is the outcome for the dead letters and the logs: "HTTP 500", "timeout after 10s".
// An error may quote what the endpoint answered ("malformed HTTP response ..."), and what is
// kept in Redis holds no number: any is masked.
func (s sent) String() string {
	if s.err != nil {
		return phone.MaskText(s.err.Error())
	}
	return fmt.Sprintf("HTTP %d", s.status)
}

// send makes one signed request. Only the endpoint's answer counts: a 2xx is delivered,
// anything else (a redirect too) is a failure to retry.
func send(ctx context.Context, client *http.Client, ep Endpoint, id string, payload []byte, at time.Time) sent {
	ctx, cancel := context.WithTimeout(ctx, ep.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(payload))
	if err != nil {
		return sent{err: fmt.Errorf("building the request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "callbackd-webhook")
	req.Header.Set(webhooksig.HeaderID, id)
	req.Header.Set(webhooksig.HeaderTimestamp, webhooksig.Timestamp(at))
	req.Header.Set(webhooksig.HeaderSignature, webhooksig.Sign(ep.Key, id, at, payload))
	resp, err := client.Do(req)
	if err != nil {
		return sent{err: requestError(ctx, err, ep.Timeout)}
	}
	// Read a little of the answer so the connection can be reused; the content is not used.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return sent{status: resp.StatusCode}
}

// requestError says why a request got no answer without quoting the URL, which may carry a
// token in its query.
func requestError(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer: timeout after %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if cause := netcause.Of(err); cause != netcause.Unknown {
		return fmt.Errorf("no answer: %s", cause)
	}
	return fmt.Errorf("no answer: %w", err)
}
