/* bench_tls: TLS against plain bulk upload and download through a running
 * tcpfiled, and the cost of a SCRAM login, with the project's own TLS and
 * SCRAM client code (src/common/tls.c, src/client/login.c).
 *   bench_tls PLAIN_PORT TLS_PORT CERT.pem SIZE_MB [USER PASSWORD]
 * (the password may also come from $BENCH_PASSWORD) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "login.h"
#include "monotonic.h"
#include "netio.h"
#include "protocol.h"
#include "tls.h"

#define CHUNK (1u << 20)

static void die(const char *what)
{
	fprintf(stderr, "bench_tls: %s\n", what);
	exit(1);
}

static void bench_open(struct conn *c, struct linebuf *lb, int port, SSL_CTX *ctx,
		       const unsigned char *pin)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	char err[TLS_ERROR_MAX], *line;
	size_t len;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		die("connect");
	if (ctx) {
		struct tls_client_opts o = { .host = "localhost", .pin = pin };
		if (tls_conn_connect(c, fd, ctx, &o, 10000, err, sizeof(err)) < 0)
			die(err);
	} else {
		conn_init_plain(c, fd);
	}
	if (linebuf_init(lb, c, PROTO_MAX_LINE) < 0)
		die("linebuf");
	conn_write(c, "HELLO 2 client=bench_tls auth\n", 30, false);
	for (int i = 0; i < 2; i++)
		if (linebuf_read_line(lb, &line, &len) != 1)
			die("hello");
}

static void bench_line(struct linebuf *lb, char *out, size_t cap)
{
	char *line;
	size_t len;

	if (linebuf_read_line(lb, &line, &len) != 1)
		die("connection closed");
	snprintf(out, cap, "%.*s", (int)len, line);
}

static double bench_put(struct conn *c, struct linebuf *lb, const char *buf, uint64_t size)
{
	char hdr[64], line[PROTO_MAX_LINE];
	uint64_t t0 = monotonic_ms();
	int n = snprintf(hdr, sizeof(hdr), "PUT files/bench.bin size=%llu\n",
			 (unsigned long long)size);

	conn_write(c, hdr, (size_t)n, true);
	for (uint64_t off = 0; off < size; off += CHUNK) {
		n = snprintf(hdr, sizeof(hdr), "DATA %u\n", CHUNK);
		conn_write(c, hdr, (size_t)n, true);
		conn_write(c, buf, CHUNK, false);
	}
	conn_write(c, "END\n", 4, false);
	bench_line(lb, line, sizeof(line));
	if (strncmp(line, "OK", 2))
		die(line);
	return (double)(monotonic_ms() - t0);
}

static double bench_get(struct conn *c, struct linebuf *lb, char *buf)
{
	char line[PROTO_MAX_LINE];
	uint64_t t0 = monotonic_ms();

	conn_write(c, "GET files/bench.bin\n", 20, false);
	bench_line(lb, line, sizeof(line));
	if (strncmp(line, "OK", 2))
		die(line);
	for (;;) {
		unsigned long long k;
		bench_line(lb, line, sizeof(line));
		if (strncmp(line, "END", 3) == 0)
			break;
		if (sscanf(line, "DATA %llu", &k) != 1 || k > CHUNK * 16ull)
			die(line);
		for (size_t got = 0; got < k;) {
			ssize_t r = linebuf_read(lb, buf, k - got < CHUNK ? k - got : CHUNK);
			if (r <= 0)
				die("body");
			got += (size_t)r;
		}
	}
	return (double)(monotonic_ms() - t0);
}

static double bench_login(struct conn *c, struct linebuf *lb, const char *user, const char *pw)
{
	unsigned char cb[TLS_EXPORTER_LEN];
	char *out, b64[PROTO_MAX_LINE], line[PROTO_MAX_LINE], raw[PROTO_MAX_LINE];
	size_t outlen;
	struct login *l;
	uint64_t t0 = monotonic_ms();
	int r;

	if (tls_conn_exporter(c, cb) < 0 || login_start(&l, user, pw, cb, sizeof(cb)) < 0)
		die("login_start");
	r = login_step(l, NULL, 0, &out, &outlen);
	proto_base64_encode(out, outlen, b64, sizeof(b64));
	free(out);
	int n = snprintf(line, sizeof(line), "AUTH %s %s\n", login_mechanism(l), b64);
	conn_write(c, line, (size_t)n, false);
	for (;;) {
		bench_line(lb, line, sizeof(line));
		const char *data = !strncmp(line, "+ ", 2) ? line + 2 : strstr(line, " data=");
		if (!data)
			die(line);
		if (data != line + 2)
			data += 6;
		n = proto_base64_decode(data, strlen(data), raw, sizeof(raw));
		r = login_step(l, raw, (size_t)n, &out, &outlen);
		if (r == LOGIN_SUCCESS) {
			free(out);
			break;
		}
		if (r != LOGIN_CONTINUE)
			die("login failed");
		proto_base64_encode(out, outlen, b64, sizeof(b64));
		free(out);
		n = snprintf(line, sizeof(line), "+ %s\n", b64);
		conn_write(c, line, (size_t)n, false);
	}
	login_free(l);
	return (double)(monotonic_ms() - t0);
}

int main(int argc, char **argv)
{
	unsigned char pin[TLS_PIN_LEN];
	char err[TLS_ERROR_MAX];
	SSL_CTX *ctx;

	if (argc < 5)
		die("usage: bench_tls PLAIN_PORT TLS_PORT CERT.pem SIZE_MB [USER [PASSWORD]]");
	uint64_t size = strtoull(argv[4], NULL, 10) * CHUNK;
	char *buf = malloc(CHUNK);
	if (!buf || tls_cert_pin(argv[3], pin) < 0 || tls_client_ctx_new(NULL, &ctx, err, sizeof(err)) < 0)
		die("set-up");
	memset(buf, 'x', CHUNK);
	for (int tls = 0; tls < 2; tls++) {
		struct conn c;
		struct linebuf lb;

		bench_open(&c, &lb, atoi(argv[1 + tls]), tls ? ctx : NULL, pin);
		double up = bench_put(&c, &lb, buf, size), down = bench_get(&c, &lb, buf);
		printf("%-5s upload %6.0f MB/s  download %6.0f MB/s  (%llu MiB)\n",
		       tls ? "tls" : "plain", size / 1048576.0 / (up / 1000),
		       size / 1048576.0 / (down / 1000), (unsigned long long)(size / 1048576));
		linebuf_finish(&lb);
		conn_close(&c);
	}
	const char *pw = argc > 6 ? argv[6] : getenv("BENCH_PASSWORD");
	if (argc > 5 && pw) {
		double total = 0, hs = 0;
		for (int i = 0; i < 10; i++) {
			struct conn c;
			struct linebuf lb;
			uint64_t t0 = monotonic_ms();
			bench_open(&c, &lb, atoi(argv[2]), ctx, pin);
			hs += (double)(monotonic_ms() - t0);
			total += bench_login(&c, &lb, argv[5], pw);
			linebuf_finish(&lb);
			conn_close(&c);
		}
		printf("TLS connect+hello %.1f ms, SCRAM-SHA-256-PLUS login %.1f ms (mean of 10)\n",
		       hs / 10, total / 10);
	}
	SSL_CTX_free(ctx);
	free(buf);
	return 0;
}
