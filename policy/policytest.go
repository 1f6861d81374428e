package policy

import (
	"strconv"
	"strings"

	"exfilguard/conf"
)

// TestFailure is a policy test (SPEC §9) whose request was not decided as
// expected, or could not be built.
type TestFailure struct {
	Test conf.Test
	// Expected and Got describe the outcomes, e.g. "DENY 470 by rule p#1"
	// and "ALLOW".
	Expected string
	Got      string
	// Decision is what the ruleset decided; zero when Err is set.
	Decision Decision
	// Err is set when the test's request could not be built (a bad url).
	Err error
}

// Error returns "FILE:LINE:COL: policy test failed: expected ..., got ...
// (decided by rule X)" or, for a request that could not be built,
// "FILE:LINE:COL: policy test failed: <why>".
func (f TestFailure) Error() string {
	var b strings.Builder
	b.WriteString(f.Test.Pos.String())
	b.WriteString(": policy test failed: ")
	if f.Err != nil {
		b.WriteString(f.Err.Error())
		return b.String()
	}
	b.WriteString("expected ")
	b.WriteString(f.Expected)
	b.WriteString(", got ")
	b.WriteString(f.Got)
	if f.Decision.Reason == ReasonDefaultDeny {
		b.WriteString(" (default deny)")
	} else {
		b.WriteString(" (decided by rule ")
		b.WriteString(f.Decision.Rule)
		b.WriteString(")")
	}
	return b.String()
}

// String is Error.
func (f TestFailure) String() string { return f.Error() }

// RunTests runs the policy tests against rs and returns the failures, in
// the order of tests; none means every test passed.
//
// Expectations: for an ordinary request ALLOW is Allow and DENY is Deny;
// for CONNECT, TUNNEL is Tunnel, BUMP is Inspect, DENY is Deny and ALLOW
// accepts either Tunnel or Inspect. TUNNEL or BUMP on an ordinary request
// never passes. Status, when non-zero, must equal the decision's status
// (it only means something for DENY); Policy and Rule, when set, must name
// the deciding policy and rule.
func RunTests(rs *Ruleset, tests []conf.Test) []TestFailure {
	var failures []TestFailure
	for i := range tests {
		t := &tests[i]
		req, err := NewRequest(t.Client, t.Method, t.URL)
		if err != nil {
			failures = append(failures, TestFailure{Test: *t, Err: err})
			continue
		}
		d := rs.Decide(req)
		if !testPasses(t, req.Method == "CONNECT", d) {
			failures = append(failures, TestFailure{
				Test:     *t,
				Expected: describeExpectation(t),
				Got:      describeOutcome(d),
				Decision: d,
			})
		}
	}
	return failures
}

func testPasses(t *conf.Test, connect bool, d Decision) bool {
	var ok bool
	switch t.Expect {
	case conf.ExpectAllow:
		ok = !connect && d.Action == Allow || connect && (d.Action == Tunnel || d.Action == Inspect)
	case conf.ExpectDeny:
		ok = d.Action == Deny
	case conf.ExpectTunnel:
		ok = connect && d.Action == Tunnel
	case conf.ExpectBump:
		ok = connect && d.Action == Inspect
	}
	if t.Status != 0 && t.Status != d.Status {
		ok = false
	}
	if t.Policy != "" && t.Policy != d.Policy {
		ok = false
	}
	if t.Rule != "" && t.Rule != d.Rule {
		ok = false
	}
	return ok
}

func describeExpectation(t *conf.Test) string {
	s := string(t.Expect)
	if s == "" {
		s = "(no expectation)"
	}
	if t.Status != 0 {
		s += " " + strconv.Itoa(t.Status)
	}
	switch {
	case t.Rule != "":
		s += " by rule " + t.Rule
	case t.Policy != "":
		s += " by policy " + t.Policy
	}
	return s
}

// describeOutcome names a decision in the policy test vocabulary: ALLOW,
// DENY <status>, and for CONNECT TUNNEL or BUMP.
func describeOutcome(d Decision) string {
	switch d.Action {
	case Allow:
		return string(conf.ExpectAllow)
	case Tunnel:
		return string(conf.ExpectTunnel)
	case Inspect:
		return string(conf.ExpectBump)
	}
	return string(conf.ExpectDeny) + " " + strconv.Itoa(d.Status)
}
