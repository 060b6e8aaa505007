//go:build !linux

package main

import "errors"

// setNice is for Linux, where a nice value is a thread's and can be
// set on each.
func setNice(int) error { return errors.New("-nice is supported on Linux only") }
