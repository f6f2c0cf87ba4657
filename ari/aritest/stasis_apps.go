package aritest

import "github.com/callbackd/callbackd/ari"

// What a Stasis application is while no socket holds it, and what the next socket for its
// name gets, as Asterisk 22 does it (res/ari/ari_websockets.c session_register_apps and
// session_unregister_app_cb; res/res_stasis.c __stasis_app_register and
// stasis_app_unregister; res/stasis/app.c app_update, app_deactivate, app_is_finished):
//
//   - a socket going away unregisters its apps: the subscribe-all forwards are dropped and the
//     app is deactivated (no handler: "Inactive Stasis app missed message"), but the app
//     itself lives on while it still forwards anything — a channel in Stasis, a channel or
//     bridge or endpoint it subscribed to. Those channels stay in Stasis, their bridges stay,
//     and nothing is queued for the app;
//   - the next socket for that name reactivates the same app (app_update, "Activating"):
//     events of those channels and bridges flow again, with no new StasisStart, and the
//     event filter set on the app is still in force; the subscribe-all forwards are not
//     restored (only app_create subscribes a new app to every event source), so such an
//     app is subscribed to everything only once it has first finished;
//   - an app that forwards nothing any more is finished: it is cleaned up and the next socket
//     creates it afresh (its subscribeAll as asked, no filter);
//   - a second socket for an app that a socket still holds replaces it (app_update,
//     "Replacing"): the old socket gets ApplicationReplaced {type, timestamp, application,
//     asterisk_id} and, for that app, nothing more; it is not closed (it may hold other apps,
//     and an inbound session only drops the app from its list). The app keeps its
//     subscriptions and filter.

// registerLocked hands app name to conn, the socket just connected for it with subscribeAll
// all.
func (s *Server) registerLocked(name string, conn *wsConn, all bool) {
	a := s.apps[name]
	switch {
	case a == nil || (a.conn == nil && s.finishedLocked(a)):
		s.apps[name] = &app{name: name, conn: conn, subscribeAll: all}
	case a.conn == nil:
		a.conn = conn // reactivated: forwards and filter kept, subscribe-all not restored
	default:
		s.replacedLocked(a)
		a.conn = conn
	}
}

// replacedLocked tells the socket holding a that another socket took the app over.
func (s *Server) replacedLocked(a *app) {
	s.emitLocked(ari.EventApplicationReplaced, fields{}, []string{a.name})
}

// finishedLocked reports whether an inactive app forwards nothing any more: no channel in
// Stasis in it, no channel, bridge or endpoint subscription (app_is_finished).
func (s *Server) finishedLocked(a *app) bool {
	for _, ch := range s.channels {
		if ch.stasisApp == a.name || ch.subs[a.name] {
			return false
		}
	}
	for _, b := range s.bridges {
		if b.subs[a.name] {
			return false
		}
	}
	// Endpoint subscriptions are not counted: the only apps that make them here are
	// subscribeAll apps, for which Asterisk creates no forward ("If subscribed to all, don't
	// subscribe again", app_subscribe_endpoint), so they never keep such an app alive.
	return true
}
