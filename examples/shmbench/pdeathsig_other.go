//go:build !linux

package main

import "os/exec"

// dieWithParent has no portable form: elsewhere a child outlives a parent
// killed outright.
func dieWithParent(*exec.Cmd) {}
