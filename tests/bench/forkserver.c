/* forkserver.c: the fork-per-connection upload server of the tutorials, a peer for peers.sh. */
/*
 * Usage: forkserver PORT DIR.  Listens on 127.0.0.1:PORT; for each connection
 * a child reads "NAME\n", "SIZE\n" and SIZE bytes, writes DIR/NAME, answers
 * "OK\n" (or "ERR\n") and exits.  Deliberately the simplest correct design:
 * this is the baseline a prefork daemon has to beat.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int write_full(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One upload; 0 when DIR/NAME holds all SIZE bytes. */
static int serve(int c, int dir)
{
	char buf[65536], *nl1 = NULL, *nl2 = NULL, *end;
	size_t have = 0, off;
	ssize_t n;

	while (!nl2) {
		if (have == sizeof(buf))
			return -1;
		n = read(c, buf + have, sizeof(buf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		have += (size_t)n;
		nl1 = memchr(buf, '\n', have);
		if (nl1)
			nl2 = memchr(nl1 + 1, '\n', have - (size_t)(nl1 + 1 - buf));
	}
	*nl1 = *nl2 = '\0';
	errno = 0;
	unsigned long long left = strtoull(nl1 + 1, &end, 10);
	if (errno || end == nl1 + 1 || *end || !buf[0] || buf[0] == '.' || strchr(buf, '/'))
		return -1;
	int fd = openat(dir, buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	off = (size_t)(nl2 + 1 - buf);
	while (left > 0) {
		if (off == have) {
			n = read(c, buf, left < sizeof(buf) ? left : sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off = 0;
			have = (size_t)n;
		}
		size_t chunk = have - off < left ? have - off : left;
		if (write_full(fd, buf + off, chunk) < 0)
			break;
		off += chunk;
		left -= chunk;
	}
	return close(fd) < 0 || left > 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int one = 1, ls, dir;

	if (argc != 3 || !(sin.sin_port = htons((unsigned short)atoi(argv[1]))))
		return 64;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	dir = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (dir < 0 || ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(ls, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(ls, 128) < 0 ||
	    signal(SIGCHLD, SIG_IGN) == SIG_ERR)
		return 1;
	for (;;) {
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		pid_t pid = fork();
		if (pid == 0) {
			const char *answer = serve(c, dir) == 0 ? "OK\n" : "ERR\n";
			_exit(write_full(c, answer, strlen(answer)) == 0 ? 0 : 1);
		}
		close(c);
	}
}
