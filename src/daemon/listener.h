/* listener: the listening sockets, bound here or inherited from systemd. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Sockets in a set; the config allows no more listen addresses. */
#define LISTENER_MAX 16
/* Buffer sizes for listener_split_address that take any address the config
 * accepts (host names are at most 253 characters, the port has 5 digits). */
#define LISTENER_HOST_CAP 256
#define LISTENER_PORT_CAP 6

struct listener_set {
	int fds[LISTENER_MAX];
	bool tls[LISTENER_MAX];   /* implicit TLS on fds[i] */
	size_t n;
	size_t n_tls;             /* how many of them are TLS */
	bool activated;     /* came from systemd socket activation */
};

/* FileDescriptorName= of a systemd socket that carries TLS. */
#define LISTENER_TLS_NAME "tls" 

/* Splits "HOST:PORT", "[V6]:PORT" (V6 may end in "%SCOPE") or "*:PORT"
 * into host and port: the one parser of listen addresses, which config
 * validation uses too.  host is "" for "*" (any address: listener_bind
 * makes that one dual-stack "[::]" socket, or 0.0.0.0 without IPv6);
 * "[::]" is kept as "::".  The port is 0-65535 in decimal and comes back
 * without leading zeros.  Only the shape is checked, not whether host is
 * a valid address or name.  Returns 0 or -EINVAL (also when a buffer is
 * too small); then, when why is not NULL, *why says what is wrong, in
 * words fit for a config error. */
int listener_split_address(const char *addr, char *host, size_t host_cap,
			   char *port, size_t port_cap, const char **why);

/* Binds one address (SO_REUSEADDR, CLOEXEC, "[::]" dual-stack) and listens
 * with backlog.  Returns the fd or -errno, with a message in err. */
int listener_bind(const char *addr, int backlog, char *err, size_t errlen);

/* Takes sockets from sd_listen_fds() when present, else binds every
 * configured address; n_addrs is at most LISTENER_MAX, which config_load
 * guarantees.  Returns 0 or -errno with a message in err. */
int listener_set_open(struct listener_set *set, char *const *addrs,
		      size_t n_addrs, int backlog, char *err, size_t errlen);
/* The same with TLS listeners too: binds addrs (plain) and tls_addrs
 * (TLS), n_addrs + n_tls at most LISTENER_MAX; under socket activation
 * the sockets named LISTENER_TLS_NAME (sd_listen_fds_with_names) are the
 * TLS ones and the others, named or not, plain. */
int listener_set_open_all(struct listener_set *set, char *const *addrs, size_t n_addrs,
			  char *const *tls_addrs, size_t n_tls, int backlog,
			  char *err, size_t errlen);
void listener_set_close(struct listener_set *set);

/* Sets TCP_DEFER_ACCEPT to timeout_ms (rounded up to whole seconds; 0
 * turns it off) on every TCP socket of the set, bound here or inherited
 * from systemd: the kernel then hands a connection to accept() only once
 * its first bytes have arrived, so a client that connects and says nothing
 * never occupies a worker; it stays in the kernel, which drops it after
 * the timeout and a few SYN-ACK retransmissions.  Only for protocols where
 * the client speaks first.  Other sockets are left alone.  Returns 0 or
 * -errno with a message in err. */
int listener_set_defer_accept(const struct listener_set *set, uint64_t timeout_ms,
			      char *err, size_t errlen);

/* TCP keepalive on an accepted connection so that a peer that vanished
 * (power loss, a dropped NAT mapping) is noticed: first probe after
 * LISTENER_KEEPIDLE_S idle seconds, then every LISTENER_KEEPINTVL_S, and
 * the connection fails after LISTENER_KEEPCNT unanswered probes.  Not for
 * unix sockets (returns 0 without doing anything).  Returns 0 or -errno. */
#define LISTENER_KEEPIDLE_S  60
#define LISTENER_KEEPINTVL_S 10
#define LISTENER_KEEPCNT     6
int listener_set_keepalive(int fd);

/* "127.0.0.1:5005" / "[::1]:5005" for a socket's local or a peer address. */
const char *listener_format_sockaddr(const struct sockaddr *sa, char *buf,
				     size_t cap);
const char *listener_format_local(int fd, char *buf, size_t cap);
