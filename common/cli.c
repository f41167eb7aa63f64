#include "cli.h"
#include "exit_codes.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "parse.h"

const char *cli_prog = "echobench";

void cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", cli_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see --help)\n");
    exit(EXIT_USAGE);
}

uint64_t cli_uint(const char *opt, const char *text, uint64_t min, uint64_t max)
{
    uint64_t v;
    if (parse_uint(text, min, max, &v) != 0)
        cli_usage_error("%s: '%s' is not a whole number from %" PRIu64 " to %" PRIu64, opt, text,
                        min, max);
    return v;
}

uint64_t cli_bytes(const char *opt, const char *text, uint64_t min, uint64_t max)
{
    uint64_t v;
    if (parse_bytes(text, min, max, &v) != 0)
        cli_usage_error("%s: '%s' is not a size from %" PRIu64 " to %" PRIu64
                        " bytes (e.g. 128, 4k)", opt, text, min, max);
    return v;
}

uint64_t cli_duration(const char *opt, const char *text, uint64_t min_ns)
{
    uint64_t ns;
    if (parse_duration(text, &ns) != 0 || ns < min_ns)
        cli_usage_error("%s: '%s' is not a %sduration such as 500ms, 10s or 2m", opt, text,
                        min_ns ? "positive " : "");
    return ns;
}
