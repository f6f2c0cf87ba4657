// Package apitest is the client side of package api for tests: one request to a server on a
// real listener, and its answer.
package apitest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Answer is what the server answered.
type Answer struct {
	Code   int
	Header http.Header
	Body   string
}

// Call sends method path to srv, with "Authorization: Bearer token" unless token is "".
func Call(t testing.TB, srv *httptest.Server, method, path, token string) Answer {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return Answer{resp.StatusCode, resp.Header, string(body)}
}
