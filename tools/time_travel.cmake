# Time travel tools: snapfs-ls and snapfs-diff read a store (also while the
# daemon writes it) and never change it. Included from tools/CMakeLists.txt.
find_package(nlohmann_json 3.10 CONFIG REQUIRED)

# What both programs share: opening a store for reading, WHEN arguments,
# paths at a generation, printing inodes.
add_library(snapfs_time_travel STATIC ${CMAKE_CURRENT_LIST_DIR}/time_travel.cc)
target_link_libraries(snapfs_time_travel
  PUBLIC snapfs_store snapfs_warnings nlohmann_json::nlohmann_json)

add_executable(snapfs-ls ${CMAKE_CURRENT_LIST_DIR}/ls_main.cc)
target_link_libraries(snapfs-ls PRIVATE snapfs_time_travel snapfs_store snapfs_warnings CLI11::CLI11)

add_executable(snapfs-diff ${CMAKE_CURRENT_LIST_DIR}/diff_main.cc)
target_link_libraries(snapfs-diff PRIVATE snapfs_time_travel snapfs_store snapfs_warnings CLI11::CLI11)

install(TARGETS snapfs-ls snapfs-diff RUNTIME DESTINATION bin)
