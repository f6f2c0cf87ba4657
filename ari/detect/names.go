package detect

import (
	"strings"

	"github.com/callbackd/callbackd/internal/phone"
)

// endpointResource returns what a channel name says it is connected to: "PJSIP/1003-0000004c" →
// "1003", "Local/600@ringgroups-0000000f;1" → "600", and whether the channel is a Local one.
// Asterisk names channels TECH/resource-SEQUENCE (Local: TECH/exten@context-SEQUENCE;N).
func endpointResource(name string) (res string, local bool) {
	slash := strings.IndexByte(name, '/')
	if slash < 0 {
		return "", false
	}
	tech, rest := name[:slash], name[slash+1:]
	local = strings.EqualFold(tech, "Local")
	if i := strings.LastIndexByte(rest, ';'); local && i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '-'); i > 0 {
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		rest = rest[:i]
	}
	return rest, local
}

// localPartner is the name of the other half of a Local channel pair ("…;1" ↔ "…;2").
func localPartner(name string) (string, bool) {
	switch {
	case strings.HasSuffix(name, ";1"):
		return name[:len(name)-1] + "2", true
	case strings.HasSuffix(name, ";2"):
		return name[:len(name)-1] + "1", true
	}
	return "", false
}

// dialResources returns the resources a dialplan Dial() would ring, in order:
// "PJSIP/1001&PJSIP/1002,20,t" → [1001 1002]; "Local/600@groups/n" → [600];
// "PJSIP/trunk/sip:+31…" → [trunk].
func dialResources(appData string) []string {
	first, _, _ := strings.Cut(appData, ",")
	var out []string
	for _, d := range strings.Split(first, "&") {
		d = strings.TrimSpace(d)
		_, rest, ok := strings.Cut(d, "/")
		if !ok {
			continue
		}
		if i := strings.IndexAny(rest, "/@"); i >= 0 {
			rest = rest[:i]
		}
		if rest != "" {
			out = append(out, rest)
		}
	}
	return out
}

// voicemailBoxes returns the mailboxes of a VoiceMail() application:
// "1003@default&1004,u" → [1003 1004].
func voicemailBoxes(appData string) []string {
	first, _, _ := strings.Cut(appData, ",")
	var out []string
	for _, b := range strings.Split(first, "&") {
		b, _, _ = strings.Cut(strings.TrimSpace(b), "@")
		if b != "" {
			out = append(out, b)
		}
	}
	return out
}

// mailboxFromMessageFile reads the mailbox out of VM_MESSAGEFILE, which app_voicemail sets to
// <spool>/voicemail/<context>/<mailbox>/<folder>/msgNNNN.
func mailboxFromMessageFile(path string) string {
	parts := strings.Split(path, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i] == "voicemail" && i+2 < len(parts) {
			return parts[i+2]
		}
	}
	return ""
}

// stasisApp is the application name of a Stasis() dialplan application: "cbctl,customer,job" → "cbctl".
func stasisApp(appData string) string {
	app, _, _ := strings.Cut(appData, ",")
	return strings.TrimSpace(app)
}

// normalizeNumber turns a caller number into E.164 in the numbering plan of region (ISO 3166,
// e.g. NL): trunks deliver numbers in the forms people dial — international with '+' or the
// region's international prefix, national with or without the trunk 0 — and only a number
// libphonenumber knows as valid is called back.
func normalizeNumber(raw, region string) (string, error) {
	n, err := phone.Parse(raw, region)
	if err != nil {
		return "", err
	}
	return n.E164, nil
}
