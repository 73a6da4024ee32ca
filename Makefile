# libpowercut: the recorder's C API (powercut.h) as a C library of its own — no Swift
# runtime — with a SONAME, a version and a pkg-config file.
#
#   make                               build .build-c/libpowercut.so.1.0.0 (+ its links)
#   make install [PREFIX=~/.local]     install header, library and pkg-config file
#   make uninstall [PREFIX=~/.local]
#   make examples                      build and run Examples/ against an install in .build-c/prefix
#
# After `make install`, with PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig:
#   cc harness.c $(pkg-config --cflags --libs powercut) -o harness
# (the pkg-config file sets an rpath, so the harness finds the library at run time).
#
# Needs a C compiler, libcapstone-dev and libunwind-dev (Tools/setup installs them).

PREFIX ?= $(HOME)/.local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

# The C ABI's version: the SONAME changes (libpowercut.so.N) only when it breaks.
SOVERSION := 1
VERSION := 1.0.0

CC ?= cc
CFLAGS ?= -O2 -g
OUT := .build-c
SRCDIR := Sources/CPowercutRecorder
# The trace writer may use the shared encoder when it is there.
SRCS := $(wildcard $(SRCDIR)/*.c) $(wildcard Sources/CPowercutEncoder/*.c)
INCLUDES := -I$(SRCDIR)/include $(patsubst %,-I%,$(wildcard Sources/CPowercutEncoder/include))
OBJS := $(patsubst %.c,$(OUT)/obj/%.o,$(notdir $(SRCS)))
DEPLIBS := -lcapstone -lunwind -lunwind-x86_64 -ldl

REAL := libpowercut.so.$(VERSION)
SONAME := libpowercut.so.$(SOVERSION)

vpath %.c $(sort $(dir $(SRCS)))

.PHONY: all install uninstall examples clean
all: $(OUT)/$(REAL) $(OUT)/$(SONAME) $(OUT)/libpowercut.so

$(OUT)/obj/%.o: %.c $(wildcard $(SRCDIR)/*.h $(SRCDIR)/include/*.h) Makefile
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(CFLAGS) -fPIC -Wall -Wextra -Wno-unused-parameter $(INCLUDES) -c $< -o $@

# Only the powercut_* functions of powercut.h are exported (the version script).
$(OUT)/$(REAL): $(OBJS) Tools/libpowercut/libpowercut.map
	$(CC) -shared -o $@ $(OBJS) -Wl,-soname,$(SONAME) -Wl,--version-script=Tools/libpowercut/libpowercut.map \
	    -Wl,--no-undefined -Wl,--build-id $(DEPLIBS)

$(OUT)/$(SONAME): $(OUT)/$(REAL)
	ln -sf $(REAL) $@
$(OUT)/libpowercut.so: $(OUT)/$(SONAME)
	ln -sf $(SONAME) $@

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 $(SRCDIR)/include/powercut.h $(DESTDIR)$(INCLUDEDIR)/powercut.h
	install -m 755 $(OUT)/$(REAL) $(DESTDIR)$(LIBDIR)/$(REAL)
	ln -sf $(REAL) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libpowercut.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' Tools/libpowercut/powercut.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/powercut.pc
	@echo "libpowercut $(VERSION) installed in $(PREFIX); compile with:"
	@echo "  PKG_CONFIG_PATH=$(PKGCONFIGDIR) cc harness.c \$$(pkg-config --cflags --libs powercut)"

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/powercut.h $(DESTDIR)$(LIBDIR)/$(REAL) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	    $(DESTDIR)$(LIBDIR)/libpowercut.so $(DESTDIR)$(PKGCONFIGDIR)/powercut.pc

# Builds and runs the examples exactly as Examples/README.md shows, against a fresh
# install under .build-c/prefix.
examples:
	Examples/run.sh

clean:
	rm -rf $(OUT)
