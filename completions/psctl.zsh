
#compdef psctl

_psctl_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _PSCTL_COMPLETE=complete_zsh psctl)
}

compdef _psctl_completion psctl

