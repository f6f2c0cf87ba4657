package queue

import (
	"context"
	"fmt"
)

const expireBatch = 100 // open-index entries one Expire script reads

// ExpireResult counts what Expire did.
type ExpireResult struct {
	// Expired are the ids of the promises now finished expired.
	Expired []string
	// Leased is how many promises were past the max open age but left alone because a
	// callback holds their lease; a later Expire ends them once it is given back.
	Leased int
}

// Expire ends expired every promise of queue that has been open longer than the queue's max
// open age (Options.MaxOpenAge), except one whose callback holds its lease. Each batch is one
// script, so a promise is either still open or expired with its dedupe key released and its
// outcome recorded; broken records met on the way are quarantined. The dispatcher calls it
// with Reclaim, so a lease that ran out is handed back first and expires on the next pass.
func (s *Store) Expire(ctx context.Context, queue string) (ExpireResult, error) {
	what := "expiring old open promises in queue " + queue
	var out ExpireResult
	if err := s.checkQueue(queue); err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	age := s.maxAge[queue]
	k := s.ks(queue)
	for offset := 0; ; {
		res, err := s.run(ctx, s.sc.expire, queue, k.common(k.quarantine()), s.clk.Now(),
			age.Milliseconds(), expireBatch, offset, age.String())
		if err != nil {
			return out, fmt.Errorf("%s: %w", what, err)
		}
		if len(res) < 5 {
			return out, fmt.Errorf("%s: unexpected reply %v", what, res)
		}
		looked, _ := res[1].(int64)
		left, _ := res[2].(int64)
		ids, _ := res[3].([]any)
		for _, id := range ids {
			if id, ok := id.(string); ok {
				out.Expired = append(out.Expired, id)
			}
		}
		s.quarantined(queue, res[4])
		out.Leased += int(left)
		// Entries ended or quarantined left the index; only the leased ones are still ahead.
		offset += int(left)
		if looked < expireBatch {
			return out, nil
		}
	}
}
