# civetweb 1.15 compiled from Debian's own source package (scripts/setup
# fetches it with `apt-get source civetweb`), linked to libssl, because
# Debian 12's libcivetweb1 loads OpenSSL with dlopen and calls
# SSL_get_peer_certificate, which OpenSSL 3 no longer exports: its first
# HTTPS request crashes the process. docs/architecture.md ("HTTP stack")
# says why this and not another server library.
#
# Defines the static library target vmtime::civetweb (C API and the C++
# wrapper CivetServer) with these compile-time choices:
#   OPENSSL_API_3_0  the OpenSSL 3 API (SSL_get1_peer_certificate, ...)
#   NO_SSL_DL        libssl/libcrypto linked, never dlopen'ed
#   USE_IPV6         "[::1]:9958" listen addresses
#   NO_CGI, NO_FILES no CGI, no file serving: every request goes to a handler
#   USE_STACK_SIZE   256 KiB worker stacks instead of the 8 MiB default
#                    (the server runs hundreds of workers, see HttpServer;
#                    the deepest request path measured touches 24 KiB)
# and -fconserve-stack: without it GCC inlines rarely used helpers (static
# files, SSI, error pages) into handle_request, a 16 KiB frame on every
# request whose pages stay resident in each of the 512 workers; with it the
# frame is 4.4 KiB (docs/performance.md, "HTTP connections").
set(VMTIME_CIVETWEB_SOURCE_DIR "/usr/local/src/vmtime-exporter/civetweb-1.15+dfsg"
    CACHE PATH "civetweb 1.15 source tree (Debian source package, fetched by scripts/setup)")

if(NOT EXISTS "${VMTIME_CIVETWEB_SOURCE_DIR}/src/civetweb.c")
  message(FATAL_ERROR
          "civetweb source not found in ${VMTIME_CIVETWEB_SOURCE_DIR}: run `bash scripts/setup` "
          "(it adds a deb-src entry and runs `apt-get source civetweb`), or set "
          "-DVMTIME_CIVETWEB_SOURCE_DIR=<civetweb-1.15 tree>")
endif()
file(STRINGS "${VMTIME_CIVETWEB_SOURCE_DIR}/include/civetweb.h" _vmtime_civetweb_version
     REGEX "^#define CIVETWEB_VERSION ")
if(NOT _vmtime_civetweb_version MATCHES "\"1\\.15\"")
  message(FATAL_ERROR "${VMTIME_CIVETWEB_SOURCE_DIR} is not civetweb 1.15 (${_vmtime_civetweb_version})")
endif()

find_package(OpenSSL 3 REQUIRED)

add_library(vmtime_civetweb STATIC
            ${VMTIME_CIVETWEB_SOURCE_DIR}/src/civetweb.c
            ${VMTIME_CIVETWEB_SOURCE_DIR}/src/CivetServer.cpp)
add_library(vmtime::civetweb ALIAS vmtime_civetweb)
# Third-party code: compiled with its own warnings off, not with the
# project's -Wall -Wextra -Werror.
# -fconserve-stack is GCC's (clang has no such flag): civetweb.c only, with gcc.
set_target_properties(vmtime_civetweb PROPERTIES COMPILE_OPTIONS
                      "-w;$<$<COMPILE_LANG_AND_ID:C,GNU>:-fconserve-stack>")
target_compile_definitions(vmtime_civetweb PRIVATE
                           OPENSSL_API_3_0 NO_SSL_DL USE_IPV6 NO_CGI NO_FILES
                           USE_STACK_SIZE=262144)
target_include_directories(vmtime_civetweb SYSTEM PUBLIC ${VMTIME_CIVETWEB_SOURCE_DIR}/include)
target_link_libraries(vmtime_civetweb PUBLIC OpenSSL::SSL OpenSSL::Crypto Threads::Threads
                      ${CMAKE_DL_LIBS})
