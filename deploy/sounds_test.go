// Package deploy_test checks the files in deploy/ against the code: the shipped sounds, the
// example configuration, the dashboard. deploy holds no Go code of its own.
package deploy_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/queue"
)

// languages are the directories of deploy/sounds; each holds every prompt.
var languages = []string{"en", "nl"}

var soundRE = regexp.MustCompile(`sound:(callbackd-[a-z0-9{}-]+)`)

// namedSounds is every sound callbackd plays unless configured otherwise: the default whisper
// (its {reason} for every reason), the example configuration (greetings included, even where
// commented out), and the engine's own notices.
func namedSounds(t *testing.T) []string {
	t.Helper()
	var uris []string
	uris = append(uris, config.Default().Dialer.Whisper...)
	example, err := os.ReadFile("callbackd.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range soundRE.FindAllString(string(example), -1) {
		uris = append(uris, m)
	}
	uris = append(uris, dialer.Sounds()...)
	set := map[string]bool{}
	for _, u := range uris {
		m := soundRE.FindStringSubmatch(u)
		if m == nil {
			continue // digits:, number:, …: Asterisk's own sounds
		}
		if strings.Contains(m[1], "{reason}") {
			for _, r := range queue.Reasons() {
				set[strings.ReplaceAll(m[1], "{reason}", strings.ReplaceAll(string(r), "_", "-"))] = true
			}
			continue
		}
		set[m[1]] = true
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Every sound callbackd names ships in every language, in both G.711 encodings.
func TestEverySoundCallbackdPlaysShipsInEveryLanguage(t *testing.T) {
	names := namedSounds(t)
	for _, want := range []string{"callbackd-callback-for", "callbackd-reason-unanswered-transfer", "callbackd-customer-busy",
		"callbackd-calling-hours-closed", "callbackd-greeting-support"} {
		if !slices.Contains(names, want) {
			t.Fatalf("the list of sounds %v lacks %s: the test no longer reads where sounds are named", names, want)
		}
	}
	for _, lang := range languages {
		for _, n := range names {
			for _, ext := range []string{".ulaw", ".alaw"} {
				path := filepath.Join("sounds", lang, n+ext)
				if st, err := os.Stat(path); err != nil || st.Size() == 0 {
					t.Errorf("deploy/%s is missing or empty: add %s to deploy/sounds/prompts.%s.tsv and run deploy/sounds/generate", path, n, lang)
				}
			}
		}
	}
}

// A sound named in the code as a literal is in the list above (else add it to dialer.Sounds).
func TestNoSoundIsNamedOutsideTheKnownPlaces(t *testing.T) {
	known := namedSounds(t)
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "aritest" || d.Name() == "demo" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range soundRE.FindAllStringSubmatch(string(src), -1) {
			if strings.HasSuffix(m[1], "-") || strings.Contains(m[1], "{") {
				continue // a prefix or a template: dialer.Sounds and the whisper expand those
			}
			if !slices.Contains(known, m[1]) {
				t.Errorf("%s names sound:%s, which no list of shipped sounds knows: add it to dialer.Sounds", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Every shipped file is a prompt of the list: nothing stale is installed.
func TestEveryShippedSoundIsInThePromptList(t *testing.T) {
	for _, lang := range languages {
		list, err := os.ReadFile(filepath.Join("sounds", "prompts."+lang+".tsv"))
		if err != nil {
			t.Fatal(err)
		}
		prompts := map[string]bool{}
		for _, line := range strings.Split(string(list), "\n") {
			if name, _, ok := strings.Cut(line, "\t"); ok && !strings.HasPrefix(line, "#") {
				prompts[name] = true
			}
		}
		files, err := os.ReadDir(filepath.Join("sounds", lang))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if name := strings.TrimSuffix(strings.TrimSuffix(f.Name(), ".ulaw"), ".alaw"); !prompts[name] {
				t.Errorf("deploy/sounds/%s/%s is not in prompts.%s.tsv", lang, f.Name(), lang)
			}
		}
	}
}
