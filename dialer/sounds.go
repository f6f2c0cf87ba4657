package dialer

import "strings"

// noticeCallingHoursClosed tells the agent that calling hours closed between ringing them and
// dialling the customer.
const noticeCallingHoursClosed = "sound:callbackd-calling-hours-closed"

// customerNotice is what the agent hears when the customer leg ended with result.
func customerNotice(result string) string {
	return "sound:callbackd-customer-" + strings.ReplaceAll(result, "_", "-")
}

// Sounds lists every sound the engine plays by itself (the notices to the agent), so the sounds
// shipped in deploy/sounds can be checked against it. The whisper and greetings are the
// configuration's.
func Sounds() []string {
	out := []string{noticeCallingHoursClosed}
	for _, r := range AttemptResults()[LegCustomer] {
		if r != ResultAnswered {
			out = append(out, customerNotice(r))
		}
	}
	return out
}
