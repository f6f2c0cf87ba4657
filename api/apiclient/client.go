// Package apiclient calls a running daemon's admin API (/api/v1), for the command line: the
// CLI makes, shows and changes promises through the daemon, so a promise made from a shell is
// quoted and screened exactly like one from a CRM.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one daemon's API.
type Client struct {
	// Base is the daemon's address, e.g. http://127.0.0.1:9464.
	Base string
	// Token is sent as a bearer token when set.
	Token string
	HTTP  *http.Client
}

// BaseFor turns an http.listen address into the URL a local client reaches it on: a wildcard
// host (0.0.0.0, ::, none) is called on loopback.
func BaseFor(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("reading http.listen %q: %w", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// Problem is an RFC 9457 answer the API gave for a refused request.
type Problem struct {
	Status int    `json:"status"`
	Type   string `json:"type"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Field  string `json:"field"`
		Detail string `json:"detail"`
	} `json:"errors"`
	// Quote is the earliest deadline the daemon would promise, when it refused a deadline.
	Quote *time.Time `json:"quote"`
}

func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	for _, e := range p.Errors {
		fmt.Fprintf(&b, "; %s: %s", e.Field, e.Detail)
	}
	if p.Quote != nil {
		fmt.Fprintf(&b, " (the earliest deadline it can keep: %s)", p.Quote.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// Do sends one request with body as JSON (nil: none) and returns the answer's body. An answer
// outside 2xx is a *Problem.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, header http.Header, body any) (int, []byte, error) {
	what := method + " " + path
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("%s: encoding the body: %w", what, err)
		}
		rd = bytes.NewReader(b)
	}
	u := strings.TrimSuffix(c.Base, "/") + "/api/v1" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", what, err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: is the daemon running? %w", what, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s: reading the answer: %w", what, err)
	}
	if resp.StatusCode/100 != 2 {
		p := &Problem{Status: resp.StatusCode}
		if json.Unmarshal(out, p) != nil || p.Title == "" {
			p.Title = http.StatusText(resp.StatusCode)
			p.Detail = strings.TrimSpace(string(out))
		}
		p.Status = resp.StatusCode
		return resp.StatusCode, out, p
	}
	return resp.StatusCode, out, nil
}

// IsProblem reports whether err is a refusal by the API (not a failure to reach it).
func IsProblem(err error) bool {
	var p *Problem
	return errors.As(err, &p)
}
