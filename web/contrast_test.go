package web

import (
	"math"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// Every pair of text and background colours the stylesheet puts together reads at WCAG AA
// contrast: 4.5:1 for text, whatever the state shown.
func TestTheColoursOfThePageHaveEnoughContrast(t *testing.T) {
	css, err := os.ReadFile("assets/page.css")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"white": "#ffffff"}
	for _, m := range regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-f]{6});`).FindAllStringSubmatch(string(css), -1) {
		vars[m[1]] = m[2]
	}
	// The cancel button's red is written in place, not as a variable.
	if m := regexp.MustCompile(`\.cancel button \{ background: (#[0-9a-f]{6}); \}`).FindStringSubmatch(string(css)); m != nil {
		vars["cancel"] = m[1]
	}
	for _, pair := range []struct{ where, fg, bg string }{
		{"text", "ink", "paper"},
		{"captions, the as-of line, promise ids", "muted", "paper"},
		{"table headers", "ink", "head"},
		{"an at-risk row", "ink", "risk-bg"},
		{"a promise id in an at-risk row", "muted", "risk-bg"},
		{"the at-risk badge and problems", "risk-ink", "risk-bg"},
		{"an overdue time left", "risk-ink", "paper"},
		{"a notice", "notice-ink", "notice-bg"},
		{"the live mark", "notice-ink", "paper"},
		{"a button", "white", "accent"},
		{"the sign-out button", "white", "muted"},
		{"a cancel button", "white", "cancel"},
	} {
		fg, bg := vars[pair.fg], vars[pair.bg]
		if fg == "" || bg == "" {
			t.Errorf("%s: colour %s or %s is not in the stylesheet", pair.where, pair.fg, pair.bg)
			continue
		}
		if r := contrast(fg, bg); r < 4.5 {
			t.Errorf("%s: %s on %s has contrast %.2f:1; want at least 4.5:1", pair.where, fg, bg, r)
		}
	}
}

// contrast is the WCAG 2 contrast ratio of two #rrggbb colours.
func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

func luminance(hex string) float64 {
	var l float64
	for i, w := range []float64{0.2126, 0.7152, 0.0722} {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		c := float64(v) / 255
		if c <= 0.04045 {
			c /= 12.92
		} else {
			c = math.Pow((c+0.055)/1.055, 2.4)
		}
		l += w * c
	}
	return l
}
