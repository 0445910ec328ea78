# Layers enforced by the build (docs/architecture.md, "Layers").
#
# No target sees the source tree root. Each layer gets its own include root
# in the build tree, build/layers/<name>/, holding symbolic links to the
# directories (or single headers) that make up the layer, at their usual
# paths: build/layers/store/exporter/store -> <source>/exporter/store. A
# target's include path is its own root plus the roots of the targets it
# links (PUBLIC propagation), so `#include "exporter/<layer>/x.h"` resolves
# only when <layer> is below it in target_link_libraries. A backward include
# is "No such file or directory": the build fails, not a lint.
#
# Quoted includes must start with "exporter/", "scoring/" or the root of the
# tree a target exposes, never ".." (the compiler would resolve a relative
# path from the including file's own directory, around the roots):
# vmtime_check_includes() fails the build on that too.

set(VMTIME_LAYER_ROOTS ${PROJECT_BINARY_DIR}/layers)
set(VMTIME_CHECK_INCLUDES_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/check_includes.cmake)

# vmtime_expose(<target> <INTERFACE|PUBLIC|PRIVATE> <path>...)
# Gives <target> an include root build/layers/<target>/ in which each <path>
# (relative to the source root: a directory or a single file) appears as a
# symbolic link at the same relative path. Records the paths in the global
# property VMTIME_EXPOSED_PATHS (vmtime_check_layer_coverage reads it).
function(vmtime_expose target visibility)
  set(root ${VMTIME_LAYER_ROOTS}/${target})
  foreach(path IN LISTS ARGN)
    set(source ${PROJECT_SOURCE_DIR}/${path})
    if(NOT EXISTS ${source})
      message(FATAL_ERROR "vmtime_expose(${target}): ${path} does not exist")
    endif()
    get_filename_component(parent ${root}/${path} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    file(CREATE_LINK ${source} ${root}/${path} SYMBOLIC)
    set_property(GLOBAL APPEND PROPERTY VMTIME_EXPOSED_PATHS ${path})
  endforeach()
  target_include_directories(${target} ${visibility} $<BUILD_INTERFACE:${root}>)
endfunction()

# vmtime_check_includes(<target> <file>...)
# Fails the build of <target> when one of <file> (absolute, or relative to
# the source root) has a quoted include that climbs out with "..", or is
# absolute.
function(vmtime_check_includes target)
  set(files)
  foreach(f IN LISTS ARGN)
    if(IS_ABSOLUTE ${f})
      list(APPEND files ${f})
    else()
      list(APPEND files ${PROJECT_SOURCE_DIR}/${f})
    endif()
  endforeach()
  set(stamp ${CMAKE_CURRENT_BINARY_DIR}/${target}.includes.stamp)
  string(REPLACE ";" "|" file_arg "${files}")  # one argument; the script splits it
  add_custom_command(
    OUTPUT ${stamp}
    COMMAND ${CMAKE_COMMAND} "-DFILES=${file_arg}" -DSTAMP=${stamp}
            -P ${VMTIME_CHECK_INCLUDES_SCRIPT}
    DEPENDS ${files} ${VMTIME_CHECK_INCLUDES_SCRIPT}
    COMMENT "Checking the includes of ${target}"
    VERBATIM)
  add_custom_target(${target}_includes DEPENDS ${stamp})
  add_dependencies(${target} ${target}_includes)
endfunction()

# vmtime_layer(<name> DIRS <dir>... [FILES <header>...] [SOURCES <file>...]
#              [PUBLIC <dep>...] [PRIVATE <dep>...])
# Defines the layer target vmtime_<name> (alias vmtime::<name>): a static
# library of SOURCES (paths relative to the source root; none: an INTERFACE
# library), exposing DIRS and FILES through its include root, linking PUBLIC
# and PRIVATE. Sources and the headers under DIRS are checked by
# vmtime_check_includes.
function(vmtime_layer name)
  cmake_parse_arguments(L "" "" "DIRS;FILES;SOURCES;PUBLIC;PRIVATE" ${ARGN})
  set(target vmtime_${name})
  set(sources)
  foreach(s IN LISTS L_SOURCES)
    list(APPEND sources ${PROJECT_SOURCE_DIR}/${s})
  endforeach()
  if(sources)
    add_library(${target} STATIC ${sources})
    set(visibility PUBLIC)
    target_link_libraries(${target} PUBLIC ${L_PUBLIC} PRIVATE ${L_PRIVATE})
  else()
    add_library(${target} INTERFACE)
    set(visibility INTERFACE)
    target_link_libraries(${target} INTERFACE ${L_PUBLIC})
  endif()
  add_library(vmtime::${name} ALIAS ${target})
  vmtime_expose(${target} ${visibility} ${L_DIRS} ${L_FILES})
  set_property(GLOBAL APPEND PROPERTY VMTIME_LAYER_SOURCES ${L_SOURCES})
  set_property(GLOBAL APPEND PROPERTY VMTIME_LAYERS ${name})
  if(sources)
    set(checked ${L_SOURCES} ${L_FILES})
    foreach(dir IN LISTS L_DIRS)
      file(GLOB headers RELATIVE ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/${dir}/*.h)
      list(APPEND checked ${headers})
    endforeach()
    vmtime_check_includes(${target} ${checked})
  endif()
endfunction()

# vmtime_check_layer_coverage(<dir>)
# Every .cc under <dir> (relative to the source root) must be a source of a
# layer (or be listed in ARGN, e.g. main.cc), and every .h must sit under an
# exposed directory or be an exposed file; otherwise configuring fails and
# names the file, so a new file cannot silently stay out of the build or out
# of the layer rules.
function(vmtime_check_layer_coverage dir)
  get_property(sources GLOBAL PROPERTY VMTIME_LAYER_SOURCES)
  get_property(exposed GLOBAL PROPERTY VMTIME_EXPOSED_PATHS)
  file(GLOB_RECURSE files RELATIVE ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/${dir}/*.cc
       ${PROJECT_SOURCE_DIR}/${dir}/*.h)
  set(missing)
  foreach(f IN LISTS files)
    if(f MATCHES "\\.cc$")
      if(NOT f IN_LIST sources AND NOT f IN_LIST ARGN)
        list(APPEND missing "${f} (add it to the SOURCES of its layer)")
      endif()
      continue()
    endif()
    set(covered FALSE)
    foreach(path IN LISTS exposed)
      if(f STREQUAL path OR f MATCHES "^${path}/")
        set(covered TRUE)
        break()
      endif()
    endforeach()
    if(NOT covered)
      list(APPEND missing "${f} (add it to the FILES or DIRS of its layer)")
    endif()
  endforeach()
  if(missing)
    list(JOIN missing "\n  " text)
    message(FATAL_ERROR "Files in no layer (exporter/CMakeLists.txt):\n  ${text}")
  endif()
endfunction()
