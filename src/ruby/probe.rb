# Prints what the launcher needs to know about this Ruby, one key=value per line.
require "rbconfig"
puts "platform=#{Gem::Platform.local}"
puts "engine=#{RUBY_ENGINE}"
puts "version=#{RUBY_VERSION}"
puts "revision=#{RUBY_REVISION}"
puts "api_version=#{Gem.extension_api_version}"
puts "arch=#{RbConfig::CONFIG["arch"]}"
puts "rubygems=#{Gem::VERSION}"
