# One CMake library per folder under src/, with include roots that make the layering a build rule.
#
#   awq_add_layer(<name> [EXECUTABLE <target>] [DEPS <layer>...] [LIBS <target>...] [HEADERS <h>...])
#
# builds src/<name>/**.cc into the static library awq_<name> (or the executable <target>), linked
# PUBLIC to awq_<dep> for each DEPS layer and to the LIBS targets. Two include roots, both generated
# in the build tree as symbolic links so that no file moves:
#   - private: <build>/layers/private/<name>/<name> -> src/<name>. Only awq_<name> gets it, so
#     "<name>/x.h" resolves inside the folder and nowhere else.
#   - public:  <build>/layers/public/<name>/awq/<h> -> include/awq/<h> for each HEADERS entry. It is a
#     PUBLIC include root of awq_<name>, so the layer and every layer linking it see those headers;
#     a layer below (or beside) does not, and "awq/<h>" fails to resolve there.
# A DEPS entry must name a layer already added: adding layers bottom-up makes a cycle impossible.
# Every include/awq/*.h must be owned by exactly one layer (awq_check_public_headers_owned).

set(AWQ_LAYER_ROOT ${PROJECT_BINARY_DIR}/layers)
set(AWQ_LAYER_LIBRARIES "")
set(AWQ_LAYER_NAMES "")
set(AWQ_OWNED_HEADERS "")

function(awq_add_layer name)
  cmake_parse_arguments(L "" "EXECUTABLE" "DEPS;LIBS;HEADERS" ${ARGN})
  set(dir ${PROJECT_SOURCE_DIR}/src/${name})
  if(NOT IS_DIRECTORY ${dir})
    message(FATAL_ERROR "awq_add_layer(${name}): no folder src/${name}")
  endif()
  foreach(dep IN LISTS L_DEPS)
    if(NOT dep IN_LIST AWQ_LAYER_NAMES)
      message(FATAL_ERROR "awq_add_layer(${name}): DEPS ${dep} is not a layer added before it "
                          "(layers are added bottom-up: ${AWQ_LAYER_NAMES})")
    endif()
  endforeach()

  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${dir}/*.cc)
  if(L_EXECUTABLE)
    set(tgt ${L_EXECUTABLE})
    add_executable(${tgt} ${srcs})
    set(scope PRIVATE)
  else()
    set(tgt awq_${name})
    add_library(${tgt} STATIC ${srcs})
    set(scope PUBLIC)
    set(AWQ_LAYER_LIBRARIES ${AWQ_LAYER_LIBRARIES} ${tgt} PARENT_SCOPE)
  endif()
  set(AWQ_LAYER_NAMES ${AWQ_LAYER_NAMES} ${name} PARENT_SCOPE)

  # Private root: a directory link named after the folder, so "<name>/x.h" keeps working inside it.
  set(priv ${AWQ_LAYER_ROOT}/private/${name})
  file(MAKE_DIRECTORY ${priv})
  file(CREATE_LINK ${dir} ${priv}/${name} SYMBOLIC)
  target_include_directories(${tgt} PRIVATE ${priv})

  # Public root: one link per owned header.
  set(pub ${AWQ_LAYER_ROOT}/public/${name})
  file(REMOVE_RECURSE ${pub})
  file(MAKE_DIRECTORY ${pub}/awq)
  set(owned ${AWQ_OWNED_HEADERS})
  foreach(h IN LISTS L_HEADERS)
    if(NOT EXISTS ${PROJECT_SOURCE_DIR}/include/awq/${h})
      message(FATAL_ERROR "awq_add_layer(${name}): HEADERS ${h} is not in include/awq/")
    endif()
    if(h IN_LIST owned)
      message(FATAL_ERROR "awq_add_layer(${name}): include/awq/${h} is owned by another layer")
    endif()
    list(APPEND owned ${h})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/include/awq/${h} ${pub}/awq/${h} SYMBOLIC)
  endforeach()
  set(AWQ_OWNED_HEADERS ${owned} PARENT_SCOPE)
  target_include_directories(${tgt} ${scope} $<BUILD_INTERFACE:${pub}>)

  list(TRANSFORM L_DEPS PREPEND awq_ OUTPUT_VARIABLE dep_targets)
  target_link_libraries(${tgt} ${scope} ${dep_targets} ${L_LIBS})
  target_compile_options(${tgt} PRIVATE -Wall -Wextra -Wno-unused-parameter)
endfunction()

# Fails the configure step when a public header belongs to no layer (it would be invisible to all).
function(awq_check_public_headers_owned)
  file(GLOB headers CONFIGURE_DEPENDS RELATIVE ${PROJECT_SOURCE_DIR}/include/awq
       ${PROJECT_SOURCE_DIR}/include/awq/*.h)
  foreach(h IN LISTS headers)
    if(NOT h IN_LIST AWQ_OWNED_HEADERS)
      message(FATAL_ERROR "include/awq/${h} belongs to no layer: add it to the HEADERS of the "
                          "awq_add_layer() line of the folder that implements it (CMakeLists.txt)")
    endif()
  endforeach()
endfunction()
