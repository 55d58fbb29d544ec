/* fuzz_protocol: libFuzzer target for every parser and formatter in protocol.c. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <stdlib.h>
#include "protocol.h"
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct proto_request req;
	const char *why;
	char *line = malloc(size + 1);
	uint64_t body;
	struct proto_status st;
	char out[PROTO_MAX_LINE * 3 + 1];
	if (!line) return 0;
	memcpy(line, data, size);
	line[size] = 0;
	(void)proto_parse_request(line, size, &req, &why);
	(void)proto_refused_body(line, size, &body);
	if (!memchr(line, 0, size)) {
		(void)proto_parse_status(line, &st);
		int v; const char *n;
		(void)proto_parse_greeting(line, &v, &n);
	}
	(void)proto_decode_path(line, size, out, sizeof(out));
	(void)proto_encode_path(line, size, out, sizeof(out));
	(void)proto_format_error(out, sizeof(out), 500, line);
	free(line);
	return 0;
}
