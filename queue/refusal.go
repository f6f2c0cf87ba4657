package queue

// Refusal says why a callback request was not made into a promise, or a dial not placed: the
// reason label of callbackd_requests_refused_total and the "reason" of the refusal's log line.
type Refusal string

// The refusals.
const (
	RefusalInvalidNumber  Refusal = "invalid_number"  // not a valid number in the numbering plan
	RefusalNotAllowed     Refusal = "not_allowed"     // refused by dialer.allow (country, type, pattern)
	RefusalRateLimited    Refusal = "rate_limited"    // over a limit of dialer.rate_limits
	RefusalInvalidRequest Refusal = "invalid_request" // anything else the store refused on its merits
)

// Refusals lists every refusal, in the order they are documented.
func Refusals() []Refusal {
	return []Refusal{RefusalInvalidNumber, RefusalNotAllowed, RefusalRateLimited, RefusalInvalidRequest}
}
