# Read by ctest (TEST_INCLUDE_FILES) after conformance_paths.cmake set the paths: adds
# conformance.MODEL.CASE for every model `echo-server --list --json` reports and every case
# `conformance --list-cases` offers (cases for concurrent models are not added for iterative
# ones, cases for --threads only for models that take it, cases that need any number of
# connections not for pools of one connection per worker), and loadgen.model.MODEL, a short
# verified load against each model.
cmake_policy(PUSH)
cmake_policy(SET CMP0054 NEW) # quoted strings in if() are strings, never variable names
execute_process(COMMAND "${SERVER}" --list --json OUTPUT_VARIABLE models_out RESULT_VARIABLE rc1)
execute_process(COMMAND "${CONFORMANCE}" --list-cases OUTPUT_VARIABLE cases_out RESULT_VARIABLE rc2)
if(NOT rc1 EQUAL 0 OR NOT rc2 EQUAL 0)
  # Make the problem visible as a failing test rather than an empty test list.
  if(NOT rc1 EQUAL 0)
    add_test(conformance.discovery "${SERVER}" --list --json)
  else()
    add_test(conformance.discovery "${CONFORMANCE}" --list-cases)
  endif()
  set_tests_properties(conformance.discovery PROPERTIES LABELS conformance)
  return()
endif()
string(REPLACE "\n" ";" case_lines "${cases_out}")
# Whether a case of this scope applies to a model (or peer) of these --list --json facts.
function(case_applies out scope kind threads_meaning max_connections pool)
  set(${out} TRUE PARENT_SCOPE)
  if((scope MATCHES "^(concurrent|many)$" AND kind STREQUAL "iterative")
     OR (scope STREQUAL "many" AND pool)
     OR (scope STREQUAL "threads" AND threads_meaning STREQUAL "")
     OR (scope STREQUAL "limited" AND max_connections EQUAL 0))
    set(${out} FALSE PARENT_SCOPE)
  endif()
endfunction()
string(JSON model_count LENGTH "${models_out}" models)
math(EXPR last "${model_count} - 1")
foreach(i RANGE ${last})
  string(JSON model GET "${models_out}" models ${i} name)
  string(JSON kind GET "${models_out}" models ${i} kind)
  string(JSON threads_meaning GET "${models_out}" models ${i} threads_meaning)
  string(JSON max_connections GET "${models_out}" models ${i} max_connections)
  string(JSON pool GET "${models_out}" models ${i} serves_one_connection_per_thread)
  add_test(loadgen.model.${model} bash "${LOADGEN_TEST}" model "${LOADGEN}" "${SERVER}"
           "${FAKE_SERVER}" ${model})
  set_tests_properties(loadgen.model.${model} PROPERTIES
    TIMEOUT 60 SKIP_RETURN_CODE 77 LABELS "loadgen;model-${model};kind-${kind}")
  if((kind STREQUAL "event-loop" OR kind STREQUAL "hybrid")
     AND (max_connections EQUAL 0 OR max_connections GREATER 2000))
    add_test(loadgen.scale.${model} bash "${LOADGEN_TEST}" scale "${LOADGEN}" "${SERVER}"
             "${FAKE_SERVER}" ${model})
    set_tests_properties(loadgen.scale.${model} PROPERTIES
      TIMEOUT 90 SKIP_RETURN_CODE 77 LABELS "loadgen;model-${model};kind-${kind}")
  endif()
  foreach(cline IN LISTS case_lines)
    if(NOT cline MATCHES "^([a-z0-9_]+) (all|concurrent|threads|limited|many)$")
      continue()
    endif()
    set(case "${CMAKE_MATCH_1}")
    case_applies(applies "${CMAKE_MATCH_2}" "${kind}" "${threads_meaning}" "${max_connections}"
                 "${pool}")
    if(NOT applies)
      continue()
    endif()
    add_test(conformance.${model}.${case} "${CONFORMANCE}" "${SERVER}" ${model} ${case})
    set_tests_properties(conformance.${model}.${case} PROPERTIES
      SKIP_RETURN_CODE 77 TIMEOUT 150 LABELS "conformance;model-${model};kind-${kind}")
  endforeach()
endforeach()

# --- peers (peers/, docs/peers.md): echo servers in other runtimes, the same cases -------------
# PEERS (conformance_paths.cmake): NAME|EXECUTABLE|PACKAGE each; EXECUTABLE is empty when the
# toolchain was not found, and then every case of that peer is a SKIP naming the package.
foreach(peer_entry IN LISTS PEERS)
  if(NOT peer_entry MATCHES "^([a-z0-9_]+)\\|([^|]*)\\|(.*)$")
    continue()
  endif()
  set(peer "${CMAKE_MATCH_1}")
  set(peer_bin "${CMAKE_MATCH_2}")
  set(peer_pkg "${CMAKE_MATCH_3}")
  set(peer_labels "conformance;peer-${peer};model-peer-${peer}")
  set(peer_out "")
  if(peer_bin)
    execute_process(COMMAND "${peer_bin}" --list --json OUTPUT_VARIABLE peer_out
                    RESULT_VARIABLE peer_rc ERROR_QUIET)
    if(NOT peer_rc EQUAL 0)
      add_test(conformance.peer-${peer}.discovery "${peer_bin}" --list --json)
      set_tests_properties(conformance.peer-${peer}.discovery PROPERTIES LABELS "${peer_labels}")
      continue()
    endif()
    string(JSON kind GET "${peer_out}" models 0 kind)
    string(JSON threads_meaning GET "${peer_out}" models 0 threads_meaning)
    string(JSON max_connections GET "${peer_out}" models 0 max_connections)
    string(JSON pool GET "${peer_out}" models 0 serves_one_connection_per_thread)
    add_test(cli.peer-${peer} bash "${CMAKE_CURRENT_LIST_DIR}/../peers/cli_test.sh"
             "${peer_bin}" ${peer})
    set_tests_properties(cli.peer-${peer} PROPERTIES
      TIMEOUT 120 LABELS "cli;peer-${peer};model-peer-${peer}")
  endif()
  foreach(cline IN LISTS case_lines)
    if(NOT cline MATCHES "^([a-z0-9_]+) (all|concurrent|threads|limited|many)$")
      continue()
    endif()
    set(case "${CMAKE_MATCH_1}")
    set(test conformance.peer-${peer}.${case})
    if(NOT peer_bin)
      add_test(${test} sh -c "echo 'SKIP: the ${peer} peer needs its toolchain: apt-get install -y ${peer_pkg} (then reconfigure)'; exit 77")
    else()
      case_applies(applies "${CMAKE_MATCH_2}" "${kind}" "${threads_meaning}"
                   "${max_connections}" "${pool}")
      if(NOT applies)
        continue()
      endif()
      add_test(${test} "${CONFORMANCE}" "${peer_bin}" ${peer} ${case})
    endif()
    set_tests_properties(${test} PROPERTIES
      SKIP_RETURN_CODE 77 TIMEOUT 150 LABELS "${peer_labels}")
  endforeach()
endforeach()
cmake_policy(POP)
