"""`./domus deploy [HOST...]`: each dom0 of the site's `hosts` gets its domUs, through Ansible.

On this machine, for each host: the site restricted to its domUs (tasks.deploy.restrict)
is written twice, once with the paths here and once with the paths there, and the root
and pkg generations it uses are built here (a generation is built once for every host that
uses it). Each host is asked, in one ssh round trip, whether its last deploy still holds
(tasks.deploy.unchanged, tasks.deploy.settled); those it does not hold for get the rest.
Then ansible-playbook (ansible-core, from the venv) runs the role in tasks/deploy/ansible
on those hosts at once (strategy free): it ships the same domus tree with a venv of the
same versions, the inputs, that host's keys and no other's, and the generations the host
does not have yet (rsync, sparse), then runs `domus build` there, which finds those
generations built already, builds the local, swap and xl files with the host's paths,
converges local images in place and activates; it rolls a rollback there forward
(tasks.deploy.forward), runs `domus gc` and records what the deploy sent. `deploy --check`
is tasks.deploy.check.
"""
