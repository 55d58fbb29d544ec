/* idlewait: epoll with EPOLLEXCLUSIVE where the kernel wakes one waiter,
 * ppoll() elsewhere. */
#define _GNU_SOURCE
#include "idlewait.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/utsname.h>
#include <unistd.h>

bool idlewait_exclusive_ok(void)
{
	const char *force = getenv("TCPFILED_TEST_PPOLL");
	struct utsname u;
	unsigned major = 0;

	if (force && strcmp(force, "1") == 0)
		return false;
	if (uname(&u) < 0 || sscanf(u.release, "%u.", &major) != 1)
		return false;
	return major >= 6;
}

int idlewait_open(struct idlewait *w, const struct listener_set *l)
{
	int r = 0;

	*w = (struct idlewait){ .listeners = l, .ep = -1 };
	if (!idlewait_exclusive_ok())
		return 0;
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	if (w->ep < 0)
		return -errno;
	for (size_t i = 0; i < l->n && r == 0; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.u32 = (uint32_t)i };

		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, l->fds[i], &ev) < 0)
			r = -errno;
	}
	if (r < 0)
		idlewait_close(w);
	return r;
}

void idlewait_close(struct idlewait *w)
{
	if (w->ep >= 0)
		close(w->ep);
	w->ep = -1;
}

static int idlewait_epoll(struct idlewait *w, bool ready[LISTENER_MAX],
			  const sigset_t *wait_mask)
{
	struct epoll_event evs[LISTENER_MAX];
	int n = epoll_pwait(w->ep, evs, LISTENER_MAX, -1, wait_mask), k = 0;

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int e = 0; e < n; e++) {
		uint32_t i = evs[e].data.u32;

		if (i < w->listeners->n && !ready[i]) {
			ready[i] = true;
			k++;
		}
	}
	return k;
}

static int idlewait_ppoll(struct idlewait *w, bool ready[LISTENER_MAX],
			  const sigset_t *wait_mask)
{
	struct pollfd pfds[LISTENER_MAX];
	size_t n = w->listeners->n;
	int r, k = 0;

	for (size_t i = 0; i < n; i++)
		pfds[i] = (struct pollfd){ .fd = w->listeners->fds[i], .events = POLLIN };
	r = ppoll(pfds, n, NULL, wait_mask);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	for (size_t i = 0; i < n; i++) {
		if (pfds[i].revents & POLLIN) {
			ready[i] = true;
			k++;
		}
	}
	return k;
}

int idlewait_wait(struct idlewait *w, bool ready[LISTENER_MAX], const sigset_t *wait_mask)
{
	memset(ready, 0, LISTENER_MAX * sizeof(ready[0]));
	return w->ep >= 0 ? idlewait_epoll(w, ready, wait_mask)
			  : idlewait_ppoll(w, ready, wait_mask);
}
