package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalPath(t *testing.T) {
	for _, c := range []struct {
		name, in, want string // want "" means an error
	}{
		// The table.
		{"dotdot", "/ok/../secret", "/secret"},
		{"encoded dotdot", "/ok/%2e%2e/secret", ""},
		{"mixed encoded dotdot", "/ok/.%2E/x", ""},
		{"encoded slash", "/ok/%2Fsecret", ""},
		{"encoded slash lower", "/ok/%2fsecret", ""},
		{"encoded backslash", "/ok/%5Csecret", ""},
		{"encoded backslash lower", "/ok/%5csecret", ""},
		{"literal backslash", "/ok\\secret", ""},
		{"bad escape", "/ok/%zz", ""},
		{"encoded NUL", "/ok/%00", ""},
		{"dot and dotdot", "/a/./b/../c", "/a/c"},
		{"dotdot at root", "/..", "/"},
		{"encoded letter kept", "/%61pi", "/%61pi"},
		{"asterisk", "*", "*"},
		{"query stripped", "/a/b?x=1&y=/../z", "/a/b"},
		{"query only", "?x", "/"},
		{"empty", "", "/"},

		// More dot segments, RFC 3986 §5.2.4 examples adapted.
		{"root", "/", "/"},
		{"plain", "/a/b/c", "/a/b/c"},
		{"trailing dot", "/a/b/.", "/a/b/"},
		{"trailing dotdot", "/a/b/..", "/a/"},
		{"dot only", "/.", "/"},
		{"dotdot beyond root", "/../../a", "/a"},
		{"dotdot pops empty segment", "/a//../b", "/a/b"},
		{"RFC example", "/a/b/c/./../../g", "/a/g"},
		{"RFC mid/6", "/mid/content=5/../6", "/mid/6"},
		{"dot then query", "/a/./b?c/../d", "/a/b"},
		{"three dots is a name", "/a/.../b", "/a/.../b"},
		{"dot in name", "/a/.b/c./..d", "/a/.b/c./..d"},
		{"encoded three dots", "/a/%2e%2e%2e/b", "/a/%2e%2e%2e/b"},
		{"encoded dot in name", "/a/%2ehtaccess", "/a/%2ehtaccess"},
		{"empty segments kept", "/a//b/", "/a//b/"},
		{"percent-encoded percent", "/a/%25/b", "/a/%25/b"},
		{"asterisk in path", "/a/*/b", "/a/*/b"},
		{"long path with dots", "/" + strings.Repeat("x/", 200) + "../y", "/" + strings.Repeat("x/", 199) + "y"},

		// Rejections.
		{"encoded single dot", "/a/%2e/b", ""},
		{"encoded dot upper", "/a/%2E", ""},
		{"dot and encoded dot", "/a/%2e./b", ""},
		{"encoded dotdot at end", "/a/%2E%2E", ""},
		{"encoded control", "/a/%1f", ""},
		{"encoded DEL", "/a/%7F", ""},
		{"literal NUL", "/a/\x00", ""},
		{"literal tab", "/a/\tb", ""},
		{"literal CR", "/a\r", ""},
		{"literal DEL", "/a\x7f", ""},
		{"truncated escape", "/a/%4", ""},
		{"truncated escape at end", "/a/%", ""},
		{"escape with slash", "/a/%/b", ""},
		{"not origin form", "a/b", ""},
		{"absolute form", "http://h/a", ""},
		{"fragment", "/a#b", ""},
		{"asterisk with query", "*?x", ""},
		{"backslash in query is fine", "/a?b\\c", "/a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := CanonicalPath(c.in)
			if c.want == "" {
				var pe *PathError
				if err == nil || !errors.As(err, &pe) {
					t.Fatalf("CanonicalPath(%q) = %q, %v; want a *PathError", c.in, got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("CanonicalPath(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			if again, err := CanonicalPath(got); err != nil || again != got {
				t.Errorf("CanonicalPath(%q) = %q, %v; not idempotent", got, again, err)
			}
		})
	}
}

func TestCanonicalPathAllocs(t *testing.T) {
	for _, in := range []string{"/api/v1/users/42/profile/photo", "/api/v1/x?token=abc", "*", "", "/a/%41"} {
		allocs := testing.AllocsPerRun(100, func() { CanonicalPath(in) })
		if allocs != 0 {
			t.Errorf("CanonicalPath(%q) allocates %v times, want 0", in, allocs)
		}
	}
	// Rejections are preallocated errors.
	allocs := testing.AllocsPerRun(100, func() { CanonicalPath("/a/%2e%2e/b") })
	if allocs != 0 {
		t.Errorf("CanonicalPath(rejected) allocates %v times, want 0", allocs)
	}
	// A path that changes costs one allocation, the result.
	allocs = testing.AllocsPerRun(100, func() { CanonicalPath("/a/../b/./c") })
	if allocs != 1 {
		t.Errorf("CanonicalPath(dot segments) allocates %v times, want 1", allocs)
	}
}

func BenchmarkCanonicalPath(b *testing.B) {
	// Six segments, nothing to change: the result is the input.
	b.Run("6-segments", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			CanonicalPath("/api/v1/users/42/profile/photo.jpg")
		}
	})
	b.Run("6-segments-query", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			CanonicalPath("/api/v1/users/42/profile/photo.jpg?size=large")
		}
	})
	b.Run("dot-segments", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			CanonicalPath("/api/v1/users/../42/./profile/photo.jpg")
		}
	})
}
