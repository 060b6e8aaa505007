/*
 * The parked floor in C: two processes pass one request and its answer
 * through a pair of eventfds, each blocking in read(2) between them. The
 * parent is the client: one request every INTERVAL_NS nanoseconds
 * (0: back to back), sleeping until the next is due; it prints the time
 * of each timed round trip (write, then read of the answer) in
 * nanoseconds, one a line, then "elapsed NS" for the timed part. The
 * child is the server. examples/shmbench compiles this file at run time.
 *
 * usage: floor N WARMUP INTERVAL_NS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* get reads an eventfd counter, put adds 1 to one; both retry when a signal interrupts. */
static int get(int fd) {
	uint64_t v;
	ssize_t r;
	do {
		r = read(fd, &v, sizeof v);
	} while (r < 0 && errno == EINTR);
	return r == sizeof v ? 0 : -1;
}

static int put(int fd) {
	uint64_t v = 1;
	ssize_t r;
	do {
		r = write(fd, &v, sizeof v);
	} while (r < 0 && errno == EINTR);
	return r == sizeof v ? 0 : -1;
}

static void serve(pid_t parent, int req, int resp) {
	/* Die with the client, even if it is killed outright. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	while (get(req) == 0 && put(resp) == 0) {
	}
	_exit(0);
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: %s N WARMUP INTERVAL_NS\n", argv[0]);
		return 2;
	}
	long n = atol(argv[1]), warmup = atol(argv[2]);
	int64_t interval = atoll(argv[3]);
	if (n < 1 || warmup < 0 || interval < 0) {
		fprintf(stderr, "floor: bad arguments\n");
		return 2;
	}
	int req = eventfd(0, EFD_CLOEXEC), resp = eventfd(0, EFD_CLOEXEC);
	if (req < 0 || resp < 0) {
		perror("floor: eventfd");
		return 1;
	}
	pid_t parent = getpid();
	pid_t child = fork();
	if (child < 0) {
		perror("floor: fork");
		return 1;
	}
	if (child == 0)
		serve(parent, req, resp);

	int status = 0;
	int64_t next = now_ns(), start = 0;
	for (long i = 0; i < warmup + n; i++) {
		if (interval > 0 && i > 0) {
			next += interval;
			struct timespec ts = {next / 1000000000, next % 1000000000};
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
			}
		}
		int64_t t0 = now_ns();
		if (interval == 0 || i == 0)
			next = t0;
		if (i == warmup)
			start = t0;
		if (put(req) != 0 || get(resp) != 0) {
			perror("floor: round trip");
			status = 1;
			break;
		}
		if (i >= warmup)
			printf("%lld\n", (long long)(now_ns() - t0));
	}
	if (status == 0)
		printf("elapsed %lld\n", (long long)(now_ns() - start));
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return status;
}
