# `BIN --help` must list the binary's own flags: every name in FLAGS
# (comma-separated, without dashes) as absl prints it, "--name (help...)".
#   cmake -DBIN=path/to/binary -DFLAGS=a,b -P lists_flags.cmake
execute_process(COMMAND ${BIN} --help OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(help "${out}${err}")
if(help MATCHES "No flags matched")
  message(FATAL_ERROR "${BIN} --help lists none of its flags:\n${help}")
endif()
string(REPLACE "," ";" flags "${FLAGS}")
foreach(flag IN LISTS flags)
  string(FIND "${help}" "--${flag} (" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${BIN} --help does not list --${flag}:\n${help}")
  endif()
endforeach()
