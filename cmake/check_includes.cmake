# cmake -DFILES=<file|file|...> -DSTAMP=<file> -P check_includes.cmake
#
# Fails (naming file:line) when a quoted #include climbs with ".." or is an
# absolute path: both would reach headers around the per-layer include roots
# (cmake/VmtimeLayers.cmake). Writes STAMP when every file passes.
set(errors)
string(REPLACE "|" ";" FILES "${FILES}")
foreach(file IN LISTS FILES)
  if(NOT EXISTS ${file})
    continue()
  endif()
  # One list element per line: characters that mean something to CMake
  # lists (";", "[", "]", "\\") are neutralised first.
  file(READ ${file} content)
  string(REGEX REPLACE "[][;\\\\]" "_" content "${content}")
  string(REPLACE "\n" ";" lines "${content}")
  set(number 0)
  foreach(line IN LISTS lines)
    math(EXPR number "${number} + 1")
    if(line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\"")
      set(path ${CMAKE_MATCH_1})
      if(path MATCHES "(^|/)\\.\\.(/|$)" OR path MATCHES "^/")
        list(APPEND errors "${file}:${number}: #include \"${path}\": include from the root of a layer (\"exporter/<layer>/...\"), never around it")
      endif()
    endif()
  endforeach()
endforeach()
if(errors)
  # One unwrapped line per error (message() would re-wrap long lines).
  foreach(error IN LISTS errors)
    execute_process(COMMAND ${CMAKE_COMMAND} -E echo "${error}")
  endforeach()
  list(LENGTH errors count)
  message(FATAL_ERROR "${count} include(s) around the layer roots (cmake/VmtimeLayers.cmake)")
endif()
file(TOUCH ${STAMP})
