/* listener: binds the configured listening sockets or adopts systemd's (socket activation). */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "sdlib.h"

#include "netio.h"
#include "parse.h"

static void listener_error(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void listener_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int listener_copy(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= cap)
		return -EINVAL;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

static int listener_split_fail(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -EINVAL;
}

int listener_split_address(const char *addr, char *host, size_t host_cap,
			   char *port, size_t port_cap, const char **why)
{
	const char *host_start, *host_end, *port_start;
	char digits[LISTENER_PORT_CAP];
	uint64_t portnum;
	bool bracketed;

	if (!addr || !host || !port)
		return listener_split_fail(why, "no address");
	bracketed = addr[0] == '[';
	if (bracketed) {
		host_start = addr + 1;
		host_end = strchr(host_start, ']');
		if (!host_end)
			return listener_split_fail(why, "missing ']' after the IPv6 address");
		if (host_end[1] != ':')
			return listener_split_fail(why, "expected [IPV6]:PORT");
		if (host_end == host_start)
			return listener_split_fail(why, "not an IPv6 address");
		port_start = host_end + 2;
	} else {
		host_start = addr;
		/* The last colon, so that an unbracketed IPv6 address gets
		 * told what it lacks. */
		host_end = strrchr(addr, ':');
		if (!host_end)
			return listener_split_fail(why, "expected HOST:PORT");
		if (memchr(addr, ':', (size_t)(host_end - addr)))
			return listener_split_fail(why,
						   "an IPv6 address needs brackets, as in [::1]:5005");
		if (host_end == host_start)
			return listener_split_fail(why, "missing host (use * for every address)");
		port_start = host_end + 1;
	}
	if (parse_u64(port_start, &portnum) < 0 || portnum > 65535)
		return listener_split_fail(why, "port must be a number between 0 and 65535");
	/* Reprinted, so that leading zeros cannot outgrow LISTENER_PORT_CAP. */
	snprintf(digits, sizeof(digits), "%u", (unsigned)portnum);

	if (!bracketed && host_end - host_start == 1 && *host_start == '*')
		host_start = host_end;
	if (listener_copy(host, host_cap, host_start,
			  (size_t)(host_end - host_start)) < 0)
		return listener_split_fail(why, bracketed ? "IPv6 address too long"
							  : "host name too long");
	if (listener_copy(port, port_cap, digits, strlen(digits)) < 0)
		return listener_split_fail(why, "no room for the port");
	return 0;
}

static int listener_gai_errno(int gai)
{
	switch (gai) {
	case EAI_SYSTEM:
		return -errno;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_AGAIN:
		return -EAGAIN;
	default:
		return -EADDRNOTAVAIL;
	}
}

/* Creates, binds and listens one socket; on failure names the failing step
 * in *step and returns -errno. */
static int listener_bind_ai(const struct addrinfo *ai, int backlog,
			    const char **step)
{
	int one = 1, zero = 0;
	int fd, r;

	*step = "socket";
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0)
		return -errno;
	/* Restarting the daemon must not wait out TIME_WAIT. */
	*step = "setsockopt(SO_REUSEADDR)";
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto err_close_fd;
	/* "[::]" serves IPv4 too, whatever net.ipv6.bindv6only says. */
	*step = "setsockopt(IPV6_V6ONLY)";
	if (ai->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0)
		goto err_close_fd;
	*step = "bind";
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		goto err_close_fd;
	*step = "listen";
	if (listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
		goto err_close_fd;
	return fd;

err_close_fd:
	r = -errno;
	close(fd);
	return r;
}

/* Tries each resolved address of host:port in order; returns the first
 * listening fd. */
static int listener_bind_host(const char *addr, const char *host,
			      const char *port, int backlog, char *err,
			      size_t errlen)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *res, *ai;
	const char *step = "getaddrinfo";
	int gai, r = -EADDRNOTAVAIL;

	gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0) {
		r = listener_gai_errno(gai);
		listener_error(err, errlen, "%s: %s", addr,
			       gai == EAI_SYSTEM ? strerror(-r) : gai_strerror(gai));
		return r;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		r = listener_bind_ai(ai, backlog, &step);
		if (r >= 0)
			break;
	}
	freeaddrinfo(res);
	if (r < 0)
		listener_error(err, errlen, "%s: %s: %s", addr, step, strerror(-r));
	return r;
}

int listener_bind(const char *addr, int backlog, char *err, size_t errlen)
{
	char host[LISTENER_HOST_CAP], port[LISTENER_PORT_CAP];
	int r;

	r = listener_split_address(addr, host, sizeof(host), port, sizeof(port),
				   NULL);
	if (r < 0) {
		listener_error(err, errlen,
			       "%s: invalid address (want HOST:PORT, [V6]:PORT or *:PORT)",
			       addr ? addr : "(null)");
		return r;
	}
	if (host[0] != '\0')
		return listener_bind_host(addr, host, port, backlog, err, errlen);

	/* Any address: one dual-stack IPv6 socket serves both families;
	 * fall back to IPv4 only when the kernel has no IPv6. */
	r = listener_bind_host(addr, "::", port, backlog, err, errlen);
	if (r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL || r == -EPROTONOSUPPORT)
		r = listener_bind_host(addr, "0.0.0.0", port, backlog, err, errlen);
	return r;
}

static int listener_set_adopt(struct listener_set *set, int n, char **names,
			      char *err, size_t errlen)
{
	int r;

	set->activated = true;
	if (n > LISTENER_MAX) {
		/* Keep them all in the set anyway so the caller can close
		 * what it was handed. */
		listener_error(err, errlen,
			       "systemd passed %d sockets, at most %d are supported",
			       n, LISTENER_MAX);
		for (int i = LISTENER_MAX; i < n; i++)
			close(SD_LISTEN_FDS_START + i);
		n = LISTENER_MAX;
		r = -EMFILE;
	} else {
		r = 0;
	}
	for (int i = 0; i < n; i++) {
		set->tls[set->n] = names && names[i] && strcmp(names[i], LISTENER_TLS_NAME) == 0;
		set->n_tls += set->tls[set->n];
		set->fds[set->n++] = SD_LISTEN_FDS_START + i;
	}
	if (r < 0)
		return r;

	for (size_t i = 0; i < set->n; i++) {
		int fd = set->fds[i];

		/* Loaded: the descriptors came from LISTEN_FDS. */
		r = sdlib_get()->is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1);
		if (r < 0) {
			listener_error(err, errlen, "socket fd %d from systemd: %s",
				       fd, strerror(-r));
			return r;
		}
		if (r == 0) {
			listener_error(err, errlen,
				       "fd %d from systemd is not a listening stream socket",
				       fd);
			return -ENOTSOCK;
		}
		r = fd_set_cloexec(fd);
		if (r < 0) {
			listener_error(err, errlen, "socket fd %d from systemd: %s",
				       fd, strerror(-r));
			return r;
		}
	}
	return 0;
}

int listener_set_open(struct listener_set *set, char *const *addrs,
		      size_t n_addrs, int backlog, char *err, size_t errlen)
{
	return listener_set_open_all(set, addrs, n_addrs, NULL, 0, backlog, err, errlen);
}

/* Whether systemd passed this process sockets: LISTEN_FDS, for this very
 * process (LISTEN_PID), as sd_listen_fds() would decide before it did
 * anything; only then is libsystemd loaded for it. */
static bool listener_fds_passed(void)
{
	const char *pid = getenv("LISTEN_PID");
	uint64_t v;

	return sdlib_wanted("LISTEN_FDS") && pid && parse_u64(pid, &v) == 0 &&
	       v == (uint64_t)getpid();
}

static void listener_free_names(char **names)
{
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

int listener_set_open_all(struct listener_set *set, char *const *addrs, size_t n_addrs,
			  char *const *tls_addrs, size_t n_tls, int backlog,
			  char *err, size_t errlen)
{
	char **names = NULL;
	int n, r;

	*set = (struct listener_set){ .n = 0 };

	/* unset_environment = 1: workers and anything they might spawn must
	 * not believe the sockets were passed to them.  Without LISTEN_FDS
	 * there are none. */
	n = 0;
	if (listener_fds_passed()) {
		const struct sdlib *sd = sdlib_get();

		if (!sd) {
			listener_error(err, errlen, "LISTEN_FDS is set: %s", sdlib_error());
			return -ELIBACC;
		}
		n = sd->listen_fds_with_names(1, &names);
	}
	if (n < 0) {
		listener_error(err, errlen, "sd_listen_fds: %s", strerror(-n));
		return n;
	}
	if (n > 0) {
		r = listener_set_adopt(set, n, names, err, errlen);
		listener_free_names(names);
		if (r < 0)
			goto err_close_set;
		return 0;
	}
	listener_free_names(names);

	if (n_addrs + n_tls == 0) {
		listener_error(err, errlen, "no listen address configured");
		return -EINVAL;
	}
	if (n_addrs + n_tls > LISTENER_MAX) {
		listener_error(err, errlen, "at most %d listen addresses", LISTENER_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n_addrs + n_tls; i++) {
		bool tls = i >= n_addrs;

		r = listener_bind(tls ? tls_addrs[i - n_addrs] : addrs[i], backlog, err, errlen);
		if (r < 0)
			goto err_close_set;
		set->tls[set->n] = tls;
		set->n_tls += tls;
		set->fds[set->n++] = r;
	}
	return 0;

err_close_set:
	listener_set_close(set);
	return r;
}

void listener_set_close(struct listener_set *set)
{
	/* close(), never shutdown(): an activated socket is shared with
	 * systemd, and shutdown() would stop it accepting for everyone. */
	for (size_t i = 0; i < set->n; i++)
		close(set->fds[i]);
	set->n = 0;
}

/* True for a TCP socket; unix sockets (a systemd ListenStream=/path) get
 * no TCP options. */
static bool listener_is_tcp(int fd)
{
	int proto = 0;
	socklen_t len = sizeof(proto);

	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0)
		return false;
	return proto == IPPROTO_TCP;
}

int listener_set_defer_accept(const struct listener_set *set, uint64_t timeout_ms,
			      char *err, size_t errlen)
{
	uint64_t secs = (timeout_ms + 999) / 1000;
	int value = secs > INT32_MAX ? INT32_MAX : (int)secs;

	for (size_t i = 0; i < set->n; i++) {
		int fd = set->fds[i];

		if (!listener_is_tcp(fd))
			continue;
		if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &value, sizeof(value)) < 0) {
			int r = -errno;
			char where[64];

			listener_error(err, errlen, "%s: setsockopt(TCP_DEFER_ACCEPT): %s",
				       listener_format_local(fd, where, sizeof(where)),
				       strerror(-r));
			return r;
		}
	}
	return 0;
}

int listener_set_keepalive(int fd)
{
	static const struct {
		int level, name, value;
	} opts[] = {
		{ SOL_SOCKET, SO_KEEPALIVE, 1 },
		{ IPPROTO_TCP, TCP_KEEPIDLE, LISTENER_KEEPIDLE_S },
		{ IPPROTO_TCP, TCP_KEEPINTVL, LISTENER_KEEPINTVL_S },
		{ IPPROTO_TCP, TCP_KEEPCNT, LISTENER_KEEPCNT },
	};

	if (!listener_is_tcp(fd))
		return 0;
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (setsockopt(fd, opts[i].level, opts[i].name, &opts[i].value,
			       sizeof(opts[i].value)) < 0)
			return -errno;
	return 0;
}

static const char *listener_format_v4(const void *addr, uint16_t port,
				      char *buf, size_t cap)
{
	char text[INET_ADDRSTRLEN];

	if (!inet_ntop(AF_INET, addr, text, sizeof(text)))
		snprintf(buf, cap, "?");
	else
		snprintf(buf, cap, "%s:%u", text, (unsigned)port);
	return buf;
}

const char *listener_format_sockaddr(const struct sockaddr *sa, char *buf,
				     size_t cap)
{
	char text[INET6_ADDRSTRLEN];

	if (!buf || cap == 0)
		return buf;
	if (!sa) {
		snprintf(buf, cap, "?");
		return buf;
	}
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return listener_format_v4(&in->sin_addr, ntohs(in->sin_port),
					  buf, cap);
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		/* An IPv4 client of a dual-stack socket reads better as
		 * plain IPv4. */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return listener_format_v4(&in6->sin6_addr.s6_addr[12],
						  ntohs(in6->sin6_port), buf, cap);
		if (!inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text)))
			snprintf(buf, cap, "?");
		else if (in6->sin6_scope_id != 0)
			snprintf(buf, cap, "[%s%%%u]:%u", text,
				 (unsigned)in6->sin6_scope_id,
				 (unsigned)ntohs(in6->sin6_port));
		else
			snprintf(buf, cap, "[%s]:%u", text,
				 (unsigned)ntohs(in6->sin6_port));
		return buf;
	}
	case AF_UNIX: {
		const struct sockaddr_un *un = (const struct sockaddr_un *)sa;

		snprintf(buf, cap, "unix:%.*s", (int)sizeof(un->sun_path),
			 un->sun_path[0] ? un->sun_path : "(unnamed)");
		return buf;
	}
	default:
		snprintf(buf, cap, "?");
		return buf;
	}
}

const char *listener_format_local(int fd, char *buf, size_t cap)
{
	struct sockaddr_storage ss = { .ss_family = AF_UNSPEC };
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		if (buf && cap > 0)
			snprintf(buf, cap, "?");
		return buf;
	}
	return listener_format_sockaddr((const struct sockaddr *)&ss, buf, cap);
}
