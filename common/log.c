/*  log.c: timestamped lines on stderr. One write(2) per line so lines from processes sharing
    a terminal or a file never interleave mid-line.  */
#include "log.h"
#include "asy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *s_name = "advsync";
static int s_level = -1;

static const char *s_level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void asy_log_set_name(const char *name) { s_name = name; }

void asy_log_set_level(asy_log_level_t level) { s_level = (int)level; }

int asy_log_parse_level(const char *text)
{
    if (!text)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(text, s_level_names[i]) == 0)
            return i;
    if (strcasecmp(text, "warning") == 0)
        return ASY_LOG_WARN;
    return -1;
}

void asy_log(asy_log_level_t level, const char *format, ...)
{
    if (s_level < 0) {
        const char *text = getenv("ADVSYNC_LOG");
        int from_env = asy_log_parse_level(text);
        s_level = from_env >= 0 ? from_env : ASY_LOG_INFO;
        if (text && *text && from_env < 0) /* said once: the level is decided once */
            fprintf(stderr,
                    "advsync: ADVSYNC_LOG=\"%.32s\" is not debug, info, warn or error; "
                    "logging at info\n",
                    text);
    }
    if ((int)level < s_level)
        return;
    char line[2048];
    struct timeval now;
    gettimeofday(&now, NULL);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    int used = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%d] %s ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, (int)(now.tv_usec / 1000), s_name, (int)getpid(),
                        s_level_names[level]);
    va_list args;
    va_start(args, format);
    int more = vsnprintf(line + used, sizeof line - (size_t)used - 1, format, args);
    va_end(args);
    size_t length = (size_t)used + (more < 0 ? 0 : (size_t)more);
    if (length > sizeof line - 2)
        length = sizeof line - 2;
    line[length++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, length);
    (void)ignored;
}

void asy_set_error(char *error, size_t error_size, const char *format, ...)
{
    if (!error || !error_size)
        return;
    va_list args;
    va_start(args, format);
    vsnprintf(error, error_size, format, args);
    va_end(args);
}

const char *asy_strerror(int code)
{
    switch (code) {
    case ASY_OK: return "success";
    case ASY_EINVAL: return "invalid input";
    case ASY_ENOMEM: return "out of memory";
    case ASY_EIO: return "input/output error";
    case ASY_EDB: return "database error";
    case ASY_EPROTO: return "protocol error";
    case ASY_ENOTFOUND: return "not found";
    case ASY_EEXIST: return "already exists";
    case ASY_ERETRY: return "temporarily unavailable";
    case ASY_ECONFIG: return "configuration error";
    case ASY_ETIMEDOUT: return "timed out";
    default: return "unknown error";
    }
}
