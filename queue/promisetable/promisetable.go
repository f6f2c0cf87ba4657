// Package promisetable prints promises as a table for people: `callbackd promises` and the
// demo's closing table.
package promisetable

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callbackd/callbackd/queue"
)

// Print prints promises one per line, with the time left to each open one's deadline; show
// masks (or not) the customer numbers.
func Print(w io.Writer, jobs []queue.Job, now time.Time, show func(string) string) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tQUEUE\tCUSTOMER\tREASONS\tTARGET\tSTATE\tATTEMPTS\tDEADLINE\tLEFT")
	for _, j := range jobs {
		reasons := make([]string, len(j.Reasons))
		for i, r := range j.Reasons {
			reasons[i] = string(r)
		}
		left := "-"
		if j.State.Open() {
			left = signedMinutes(j.Deadline.Sub(now))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Queue, show(j.Number), strings.Join(reasons, "+"),
			strings.Join(j.Targets, ","), j.State, j.Attempts, j.MaxAttempts, j.Deadline.UTC().Format(time.RFC3339), left)
	}
	_ = tw.Flush()
}

// Minutes prints a duration as "1h59m" or "45m", as the table's LEFT column does.
func Minutes(d time.Duration) string {
	d = d.Round(time.Minute)
	if d >= time.Hour {
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dm", int(d.Minutes()))
}

// signedMinutes is Minutes for a time that may already have passed ("-12m": overdue).
func signedMinutes(d time.Duration) string {
	if d < 0 {
		return "-" + Minutes(-d)
	}
	return Minutes(d)
}
