package ari

import (
	"strconv"
	"strings"
)

// Channel ids of callbackd's own callback legs. Asterisk's own dial-API channels (an
// attended transfer's recall of the transferer, Page() legs, AMI or ARI originates of other
// applications) all run the same "AppDial2" placeholder and some are dialled without a
// calling channel, so neither says a channel is callbackd's; these ids, which the dialer
// gives every leg it originates or creates, and the control application do.
const (
	callbackIDPrefix  = "cbd-"
	agentLegSuffix    = "-agent"
	customerLegSuffix = "-customer"
)

// CallbackIDs returns the ids of one callback attempt: its agent leg, its customer leg and
// its bridge, "cbd-<promise>-<fencing token>[-agent|-customer]". The token makes every
// attempt's ids new, so a late event of an earlier attempt never names a later one's leg.
func CallbackIDs(promise string, token int64) (agent, customer, bridge string) {
	bridge = callbackIDPrefix + strings.ToLower(promise) + "-" + strconv.FormatInt(token, 10)
	return bridge + agentLegSuffix, bridge + customerLegSuffix, bridge
}

// IsCallbackLeg reports whether a channel id is one CallbackIDs makes for a leg.
func IsCallbackLeg(id string) bool {
	p, ok := ParseCallbackID(id)
	return ok && p.Leg != ""
}

// CallbackID is what one of callbackd's channel or bridge ids says: whose callback attempt it
// belongs to. A daemon that did not create the channel (it was restarted, or another daemon
// did) finds the promise and the claim in it, and so whether the callback still has an owner.
type CallbackID struct {
	// Promise is the promise's id as the id carries it: lower case.
	Promise string
	// Token is the fencing token of the claim the attempt ran under.
	Token int64
	// Leg is LegAgent or LegCustomer for a channel, "" for the bridge.
	Leg string
	// Bridge is the attempt's bridge id, the same for its legs and its bridge.
	Bridge string
}

// The legs of a callback attempt, as CallbackID.Leg names them.
const (
	LegAgent    = "agent"
	LegCustomer = "customer"
)

// ParseCallbackID reads an id CallbackIDs made: a leg's or the bridge's.
func ParseCallbackID(id string) (CallbackID, bool) {
	rest, ok := strings.CutPrefix(id, callbackIDPrefix)
	if !ok {
		return CallbackID{}, false
	}
	leg := ""
	switch {
	case strings.HasSuffix(rest, agentLegSuffix):
		rest, leg = strings.TrimSuffix(rest, agentLegSuffix), LegAgent
	case strings.HasSuffix(rest, customerLegSuffix):
		rest, leg = strings.TrimSuffix(rest, customerLegSuffix), LegCustomer
	}
	promise, token, ok := cutLast(rest, '-')
	if !ok || promise == "" || !alnum(promise) {
		return CallbackID{}, false
	}
	n, err := strconv.ParseInt(token, 10, 64)
	if err != nil {
		return CallbackID{}, false
	}
	return CallbackID{Promise: promise, Token: n, Leg: leg, Bridge: callbackIDPrefix + rest}, true
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}
