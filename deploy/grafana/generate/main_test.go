package main

import (
	"bytes"
	"os"
	"testing"
)

// The committed dashboard is exactly what this program makes, so a change to the panels is
// made here and reviewed as code (make dashboard regenerates the file).
func TestTheCommittedDashboardIsGenerated(t *testing.T) {
	have, err := os.ReadFile("../callbackd.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, Dashboard()) {
		t.Error("deploy/grafana/callbackd.json is not what deploy/grafana/generate makes: run make dashboard and commit it")
	}
}

// Generating twice gives the same bytes: no map order or clock leaks into the file.
func TestTheDashboardIsReproducible(t *testing.T) {
	if !bytes.Equal(Dashboard(), Dashboard()) {
		t.Error("two runs of Dashboard() differ")
	}
}
