package api

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the admin API's OpenAPI 3.1 description, checked in beside the handlers; the
// test suite validates every request and response it makes against it.
//
//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}
