/* idlewait: how an idle worker waits for a connection on the listeners it
 * shares with the rest of the pool.
 *
 * With epoll and EPOLLEXCLUSIVE a connection wakes one idle worker, not
 * the whole pool (ppoll() on the listeners woke every idle worker for
 * every connection, and all but one found nothing to accept: a thundering
 * herd that grew with the pool, which Apache's accept mutex and nginx's
 * EPOLLEXCLUSIVE avoid).  That is only safe where the kernel takes a woken
 * waiter off the epoll wait queue at once (Linux 6.0, "epoll: autoremove
 * wakers even more aggressively"): before that, a second connection
 * arriving while the first worker was still waking was charged to that
 * same worker, which serves one connection at a time, so it could wait
 * for a busy worker while others sat idle.  Older kernels keep ppoll(). */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "listener.h"

struct idlewait {
	const struct listener_set *listeners;
	int ep;          /* the worker's own epoll set, or -1: ppoll() */
};

/* Whether this kernel wakes exactly one exclusive epoll waiter per event
 * (release 6.0 or later).  TCPFILED_TEST_PPOLL=1 in the environment says
 * no, so that the tests can run the older path. */
bool idlewait_exclusive_ok(void);

/* Sets w up for l in this process (after the fork: an epoll set is shared
 * by every process holding its descriptor).  Returns 0 or -errno. */
int idlewait_open(struct idlewait *w, const struct listener_set *l);
void idlewait_close(struct idlewait *w);

/* Waits until a listener is readable, letting in the signals wait_mask
 * does not block; sets ready[i] for each readable listener i.  Returns how
 * many, 0 when a signal ended the wait, or -errno. */
int idlewait_wait(struct idlewait *w, bool ready[LISTENER_MAX], const sigset_t *wait_mask);
