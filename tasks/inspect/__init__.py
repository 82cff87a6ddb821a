"""Looking without building: what a template renders for a domU (`./domus render`), a file
or directory read back from an image (`./domus show`, `./domus ls`) and what differs
between two generations of an image or between a local image and the site
(`./domus diff`). None of them takes the run lock or writes into the build."""
