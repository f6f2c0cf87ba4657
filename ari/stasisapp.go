package ari

import "strings"

// StasisApp returns the Stasis application a channel is in, read from its dialplan position
// (app "Stasis", data "<app>[,<args>]"), or "" when it is in none.
func StasisApp(ch *Channel) string {
	if ch == nil || !strings.EqualFold(ch.Dialplan.AppName, "Stasis") {
		return ""
	}
	app, _, _ := strings.Cut(ch.Dialplan.AppData, ",")
	return strings.TrimSpace(app)
}
