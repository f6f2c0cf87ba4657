package config

import (
	"os"
	"strings"
	"testing"
)

// The example as shipped loads (it is documentation) but every made-up value in it is named,
// with what to put there instead.
func TestPlaceholdersNameEveryMadeUpValueOfTheExample(t *testing.T) {
	data, err := os.ReadFile("../deploy/callbackd.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseEnviron(data, nil)
	if err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	got := map[string]string{}
	for _, p := range Placeholders(c) {
		got[p.Path] = p.Message
	}
	for path, says := range map[string]string{
		"asterisk[0].password":    "ari.conf",
		"dialer.caller_id.number": "the number customers should see",
		"dialer.caller_id.name":   "your company's name",
		"agents[0]":               "anna on PJSIP/1001 is an example agent",
		"agents[1]":               "bram on PJSIP/1002 is an example agent",
	} {
		if !strings.Contains(got[path], says) {
			t.Errorf("%s: %q, want a message saying %q", path, got[path], says)
		}
	}
	if len(got) != 5 {
		t.Errorf("placeholders %v, want exactly the five above", got)
	}

	// Changed as the comments say, nothing is left.
	fixed := strings.NewReplacer("password: change-me", "password: s3cret-from-ari-conf",
		`number: "+31201234500"`, `number: "+31307654300"`, `name: "Example Support"`, `name: "Acme"`,
		"endpoint: PJSIP/1001", "endpoint: PJSIP/201", "endpoint: PJSIP/1002", "endpoint: PJSIP/202").Replace(string(data))
	c, err = ParseEnviron([]byte(fixed), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := Placeholders(c); len(p) != 0 {
		t.Errorf("after the changes, placeholders %v remain", p)
	}
}
