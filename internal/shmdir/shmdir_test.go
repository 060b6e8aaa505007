package shmdir

import "testing"

func TestSetRestores(t *testing.T) {
	if got := Path(); got != defaultDir {
		t.Fatalf("Path() = %q before any Set, want %q", got, defaultDir)
	}
	restoreA := Set("/a")
	restoreB := Set("/b")
	if got := Path(); got != "/b" {
		t.Fatalf("Path() = %q after Set(\"/b\"), want /b", got)
	}
	restoreB()
	if got := Path(); got != "/a" {
		t.Fatalf("Path() = %q after restoring Set(\"/b\"), want /a", got)
	}
	restoreA()
	if got := Path(); got != defaultDir {
		t.Fatalf("Path() = %q after restoring both, want %q", got, defaultDir)
	}
}
