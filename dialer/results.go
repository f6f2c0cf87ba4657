package dialer

// Call legs and results, the labels of callbackd_call_attempts_total.
const (
	LegAgent    = "agent"
	LegCustomer = "customer"

	ResultAnswered       = "answered"
	ResultNoAnswer       = "no_answer"
	ResultBusy           = "busy"
	ResultRejected       = "rejected"
	ResultUnavailable    = "unavailable"
	ResultFailed         = "failed"
	ResultHungUp         = "hung_up"
	ResultNoConfirmation = "no_confirmation"
)

// AttemptResults lists the results of each leg, for metrics that start at zero.
func AttemptResults() map[string][]string {
	return map[string][]string{
		LegAgent:    {ResultAnswered, ResultNoAnswer, ResultUnavailable, ResultHungUp},
		LegCustomer: {ResultAnswered, ResultBusy, ResultNoAnswer, ResultRejected, ResultUnavailable, ResultFailed, ResultNoConfirmation},
	}
}

// Classify names why an ARI-dialled leg ended before it answered. As recorded (traces 08–13),
// such a leg gets no final Dial event, so the ChannelDestroyed cause (Q.850) and tech_cause
// (SIP) are all there is. A rejected call reads like busy (17/486) on the recordings; only a
// 603 Decline or Q.850 21 is told apart.
func Classify(cause, techCause int) string {
	switch {
	case cause == 21 || techCause == 603:
		return ResultRejected
	case cause == 17 || techCause == 486 || techCause == 600:
		return ResultBusy
	case cause == 18 || cause == 19 || techCause == 480 || techCause == 408:
		return ResultNoAnswer
	case cause == 1 || cause == 3 || cause == 20 || cause == 27 || cause == 34 || cause == 38 ||
		techCause == 404 || techCause == 503:
		return ResultUnavailable
	}
	return ResultFailed
}
