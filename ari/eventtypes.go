package ari

// knownEventTypes are the ARI event types of Asterisk 22's events.json. The connection hands
// only these to Handlers: a type outside the list is counted and skipped, because nothing in
// callbackd can act on it and a type label per unknown name would let a PBX upgrade blow up
// metric cardinality.
var knownEventTypes = map[string]bool{
	"ApplicationMoveFailed": true, "ApplicationRegistered": true, "ApplicationReplaced": true,
	"ApplicationUnregistered": true,
	"BridgeAttendedTransfer":  true, "BridgeBlindTransfer": true, "BridgeCreated": true,
	"BridgeDestroyed": true, "BridgeMerged": true, "BridgeVideoSourceChanged": true,
	"CallBrokenEvent": true,
	"ChannelCallerId": true, "ChannelConnectedLine": true, "ChannelCreated": true,
	"ChannelDestroyed": true, "ChannelDialplan": true, "ChannelDtmfReceived": true,
	"ChannelEnteredBridge": true, "ChannelHangupRequest": true, "ChannelHold": true,
	"ChannelLeftBridge": true, "ChannelStateChange": true, "ChannelTalkingFinished": true,
	"ChannelTalkingStarted": true, "ChannelToneDetected": true, "ChannelTransfer": true,
	"ChannelUnhold": true, "ChannelUserevent": true, "ChannelVarset": true,
	"ContactStatusChange": true, "DeviceStateChanged": true, "Dial": true,
	"EndpointStateChange": true, "PeerStatusChange": true,
	"PlaybackContinuing": true, "PlaybackFinished": true, "PlaybackStarted": true,
	"RecordingFailed": true, "RecordingFinished": true, "RecordingStarted": true,
	"StasisEnd": true, "StasisStart": true, "TextMessageReceived": true,
}

// KnownEventType reports whether typ is an ARI event type the connection delivers.
func KnownEventType(typ string) bool { return knownEventTypes[typ] }

// DefaultMonitorEvents is the event filter of the monitor app: what the detector and the
// agent-availability tracker read. Everything else (RTP, DTMF, talking detection, playbacks of
// other applications) is noise on a busy PBX, and the filter stops it before the socket.
var DefaultMonitorEvents = []string{
	"ChannelCreated", "ChannelDestroyed", "ChannelStateChange", "ChannelDialplan",
	"ChannelVarset", "ChannelHangupRequest", "ChannelCallerId", "ChannelConnectedLine",
	"ChannelEnteredBridge", "ChannelLeftBridge", "ChannelUserevent", "ChannelHold",
	"ChannelUnhold", "ChannelTransfer",
	"BridgeCreated", "BridgeDestroyed", "BridgeMerged", "BridgeBlindTransfer",
	"BridgeAttendedTransfer",
	"Dial", "StasisStart", "StasisEnd", "ApplicationReplaced",
	"EndpointStateChange", "DeviceStateChanged", "PeerStatusChange", "ContactStatusChange",
}
