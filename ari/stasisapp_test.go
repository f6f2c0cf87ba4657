package ari

import "testing"

func TestStasisApp(t *testing.T) {
	for _, tt := range []struct {
		name string
		dp   Dialplan
		want string
	}{
		{"a callback leg in the control app (trace 07)", Dialplan{AppName: "Stasis", AppData: "cbctl,agent,job-07"}, "cbctl"},
		{"no arguments", Dialplan{AppName: "Stasis", AppData: "callbackd-b"}, "callbackd-b"},
		{"an originate still ringing", Dialplan{AppName: "AppDial2", AppData: "(Outgoing Line)"}, ""},
		{"in the dialplan", Dialplan{AppName: "Dial", AppData: "PJSIP/1001,20"}, ""},
		{"nowhere yet", Dialplan{}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := StasisApp(&Channel{Dialplan: tt.dp}); got != tt.want {
				t.Errorf("StasisApp(%+v) = %q, want %q", tt.dp, got, tt.want)
			}
		})
	}
	if got := StasisApp(nil); got != "" {
		t.Errorf("StasisApp(nil) = %q", got)
	}
}
