/*  sections.c: see sections.h.  */
#include "sections.h"

#include <string.h>

const char *asy_sections_stranger(zconfig_t *root)
{
    static const char *const known[] = {"agent", "broker", "monitor"};
    for (zconfig_t *section = zconfig_child(root); section; section = zconfig_next(section)) {
        const char *name = zconfig_name(section);
        bool found = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0] && !found; i++)
            found = name && strcmp(name, known[i]) == 0;
        if (!found)
            return name ? name : "";
    }
    return NULL;
}
