package aritest

import (
	"testing"

	"github.com/callbackd/callbackd/ari"
)

// GET /playbacks/{id} answers as Asterisk 22 does (res/ari/resource_playbacks.c,
// ast_ari_playbacks_get: stasis_app_playback_find_by_id, else 404 "Playback not found"). A
// playback is in that container from POST …/play until its play command is done with
// (res/res_stasis_playback.c: stasis_app_send_command_async(…, play_uri, …,
// remove_from_playbacks) unlinks it once the media finished, or the command was dropped
// because the channel left). So it is how a client that missed PlaybackFinished in a socket gap
// learns that the playback is over.
func TestAPlaybackIsReadableWhileItPlaysAndNotFoundOnceItEnded(t *testing.T) {
	cases := []struct {
		name string
		// end ends the playback one way, with the socket connected or not.
		end func(t *testing.T, s *Server, es *eventSocket)
	}{
		{"it finished", func(t *testing.T, s *Server, es *eventSocket) {
			waitFor(t, "PlaybackFinished", func() bool { return contains(eventsOf(es, 0), string(ari.EventPlaybackFinished)) })
		}},
		{"it finished while no socket was connected", func(t *testing.T, s *Server, es *eventSocket) {
			s.DropWebSockets()
			waitFor(t, "the playback to end unheard", func() bool { return len(s.Playbacks()) == 0 })
			from := len(es.snapshot())
			es.open()
			answeredInApp(t, s, "cbctl", "PJSIP%2F1001", "agent2")
			if got := eventsOf(es, from); contains(got, string(ari.EventPlaybackFinished)) {
				t.Errorf("the new socket got %s: a PlaybackFinished of the gap must be lost, as on Asterisk", joinTypes(got))
			}
		}},
		{"its channel hung up", func(t *testing.T, s *Server, es *eventSocket) {
			s.Hangup("agent", 16)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, es := agentInApp(t, "app=cbctl", "cbctl")
			status, reply := restCall(t, s, "POST", "/ari/channels/agent/play?playbackId=pb-1&media=sound:hello-world,digits:12345678901234567890", nil)
			if status != 201 {
				t.Fatalf("play: %d %v", status, reply)
			}
			status, reply = restCall(t, s, "GET", "/ari/playbacks/pb-1", nil)
			pb, _ := reply.(map[string]any)
			if status != 200 || pb["id"] != "pb-1" || pb["target_uri"] != "channel:agent" || pb["language"] != "en" ||
				!(pb["state"] == "queued" || pb["state"] == "playing" || pb["state"] == "continuing") {
				t.Fatalf("GET /ari/playbacks/pb-1 while it plays: %d %v; want 200 with the Playback, state queued, playing or continuing", status, reply)
			}
			if got, want := jsonKeys(pb), []string{"id", "language", "media_uri", "next_media_uri", "state", "target_uri"}; !sameStrings(got, want) {
				t.Errorf("playback keys %v; want %v (as in trace 11's play reply)", got, want)
			}

			tc.end(t, s, es)
			waitFor(t, "the playback to leave the registry", func() bool { return len(s.Playbacks()) == 0 })
			status, reply = restCall(t, s, "GET", "/ari/playbacks/pb-1", nil)
			if m, _ := reply.(map[string]any); status != 404 || m["message"] != "Playback not found" {
				t.Errorf("GET /ari/playbacks/pb-1 after it ended: %d %v; want 404 {\"message\":\"Playback not found\"}", status, reply)
			}
		})
	}
}

// An id that never played is not found either, with the same answer.
func TestAnUnknownPlaybackIsNotFound(t *testing.T) {
	s, _ := newFake(t)
	status, reply := restCall(t, s, "GET", "/ari/playbacks/never", nil)
	if m, _ := reply.(map[string]any); status != 404 || m["message"] != "Playback not found" {
		t.Errorf("GET /ari/playbacks/never: %d %v; want 404 {\"message\":\"Playback not found\"}", status, reply)
	}
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
