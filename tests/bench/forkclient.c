/* forkclient.c: one upload to forkserver.c, a fresh process per session in peers.sh. */
/*
 * Usage: forkclient PORT FILE.  Sends "basename(FILE)\n", "SIZE\n" and the
 * bytes to 127.0.0.1:PORT; exits 0 when the server answers "OK\n".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	char head[4200], answer[8];
	struct stat st;
	size_t got = 0;
	int fd, s, len;

	if (argc != 3 || !(sin.sin_port = htons((unsigned short)atoi(argv[1]))))
		return 64;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return 1;
	const char *base = strrchr(argv[2], '/') ? strrchr(argv[2], '/') + 1 : argv[2];
	len = snprintf(head, sizeof(head), "%s\n%lld\n", base, (long long)st.st_size);
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (len < 0 || (size_t)len >= sizeof(head) || s < 0 ||
	    connect(s, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    send(s, head, (size_t)len, MSG_NOSIGNAL | MSG_MORE) != len)
		return 1;
	for (off_t off = 0; off < st.st_size;) {
		ssize_t n = sendfile(s, fd, &off, (size_t)(st.st_size - off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 1;
	}
	while (got < sizeof(answer)) {
		ssize_t n = read(s, answer + got, sizeof(answer) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got == 3 && memcmp(answer, "OK\n", 3) == 0 ? 0 : 1;
}
