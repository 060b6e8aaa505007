//go:build !linux

package main

import (
	"context"
	"errors"
)

const linux = false

const (
	roleParkedEventfd = "parked-eventfd"
	roleParkedFutex   = "parked-futex"
)

var errParkedLinux = &skipError{"the parked floors use eventfd and futex, Linux only"}

func (b *bench) withParkedEventfd(context.Context, func(roundTripper) error) error {
	return errParkedLinux
}

func (b *bench) withParkedFutex(context.Context, func(roundTripper) error) error {
	return errParkedLinux
}

func childParkedEventfd() error { return errors.New(errParkedLinux.reason) }
func childParkedFutex() error   { return errors.New(errParkedLinux.reason) }
